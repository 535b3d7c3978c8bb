#include "BridgeLipSyncMapping.h"

namespace
{
FBridgeMorphList Morphs(std::initializer_list<TPair<const TCHAR*, float>> Items)
{
	FBridgeMorphList List;
	for (const auto& Item : Items)
	{
		FBridgeMorphWeight W;
		W.MorphTarget = FName(Item.Key);
		W.Scale = Item.Value;
		List.Morphs.Add(W);
	}
	return List;
}
} // namespace

UBridgeLipSyncMapping::UBridgeLipSyncMapping()
{
	VisemeMorphs.Add(TEXT("sil"), Morphs({}));
	VisemeMorphs.Add(TEXT("PP"), Morphs({{TEXT("mouthClose"), 0.8f}, {TEXT("mouthPressLeft"), 0.5f}, {TEXT("mouthPressRight"), 0.5f}}));
	VisemeMorphs.Add(TEXT("FF"), Morphs({{TEXT("mouthRollLower"), 0.7f}, {TEXT("jawOpen"), 0.1f}}));
	VisemeMorphs.Add(TEXT("TH"), Morphs({{TEXT("tongueOut"), 0.4f}, {TEXT("jawOpen"), 0.15f}}));
	VisemeMorphs.Add(TEXT("DD"), Morphs({{TEXT("jawOpen"), 0.25f}}));
	VisemeMorphs.Add(TEXT("kk"), Morphs({{TEXT("jawOpen"), 0.3f}}));
	VisemeMorphs.Add(TEXT("CH"), Morphs({{TEXT("mouthFunnel"), 0.5f}, {TEXT("jawOpen"), 0.2f}}));
	VisemeMorphs.Add(TEXT("SS"), Morphs({{TEXT("mouthStretchLeft"), 0.4f}, {TEXT("mouthStretchRight"), 0.4f}, {TEXT("jawOpen"), 0.1f}}));
	VisemeMorphs.Add(TEXT("nn"), Morphs({{TEXT("jawOpen"), 0.15f}}));
	VisemeMorphs.Add(TEXT("RR"), Morphs({{TEXT("mouthPucker"), 0.4f}, {TEXT("jawOpen"), 0.2f}}));
	VisemeMorphs.Add(TEXT("aa"), Morphs({{TEXT("jawOpen"), 0.7f}}));
	VisemeMorphs.Add(TEXT("E"), Morphs({{TEXT("mouthStretchLeft"), 0.5f}, {TEXT("mouthStretchRight"), 0.5f}, {TEXT("jawOpen"), 0.3f}}));
	VisemeMorphs.Add(TEXT("I"), Morphs({{TEXT("mouthSmileLeft"), 0.4f}, {TEXT("mouthSmileRight"), 0.4f}, {TEXT("jawOpen"), 0.2f}}));
	VisemeMorphs.Add(TEXT("O"), Morphs({{TEXT("mouthFunnel"), 0.7f}, {TEXT("jawOpen"), 0.4f}}));
	VisemeMorphs.Add(TEXT("U"), Morphs({{TEXT("mouthPucker"), 0.8f}, {TEXT("jawOpen"), 0.1f}}));

	ExpressionMorphs.Add(TEXT("happy"), Morphs({{TEXT("mouthSmileLeft"), 0.6f}, {TEXT("mouthSmileRight"), 0.6f}, {TEXT("cheekSquintLeft"), 0.3f}, {TEXT("cheekSquintRight"), 0.3f}}));
	ExpressionMorphs.Add(TEXT("sad"), Morphs({{TEXT("mouthFrownLeft"), 0.6f}, {TEXT("mouthFrownRight"), 0.6f}, {TEXT("browInnerUp"), 0.5f}}));
	ExpressionMorphs.Add(TEXT("angry"), Morphs({{TEXT("browDownLeft"), 0.7f}, {TEXT("browDownRight"), 0.7f}, {TEXT("noseSneerLeft"), 0.3f}, {TEXT("noseSneerRight"), 0.3f}}));
	ExpressionMorphs.Add(TEXT("surprised"), Morphs({{TEXT("browInnerUp"), 0.8f}, {TEXT("eyeWideLeft"), 0.6f}, {TEXT("eyeWideRight"), 0.6f}}));
	ExpressionMorphs.Add(TEXT("afraid"), Morphs({{TEXT("browInnerUp"), 0.7f}, {TEXT("eyeWideLeft"), 0.5f}, {TEXT("eyeWideRight"), 0.5f}, {TEXT("mouthStretchLeft"), 0.3f}, {TEXT("mouthStretchRight"), 0.3f}}));
	ExpressionMorphs.Add(TEXT("disgusted"), Morphs({{TEXT("noseSneerLeft"), 0.7f}, {TEXT("noseSneerRight"), 0.7f}, {TEXT("mouthUpperUpLeft"), 0.4f}, {TEXT("mouthUpperUpRight"), 0.4f}}));
}
