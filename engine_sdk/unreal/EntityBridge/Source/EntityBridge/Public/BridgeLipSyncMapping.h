// Data asset: which morph targets each of the 15 visemes (and each expression preset) drives.
#pragma once

#include "CoreMinimal.h"
#include "Engine/DataAsset.h"
#include "BridgeLipSyncMapping.generated.h"

USTRUCT(BlueprintType)
struct FBridgeMorphWeight
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	FName MorphTarget;

	// The morph target's weight when the viseme is fully on.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge", meta = (ClampMin = "0", ClampMax = "1"))
	float Scale = 1.0f;
};

USTRUCT(BlueprintType)
struct FBridgeMorphList
{
	GENERATED_BODY()

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	TArray<FBridgeMorphWeight> Morphs;
};

UCLASS(BlueprintType)
class ENTITYBRIDGE_API UBridgeLipSyncMapping : public UDataAsset
{
	GENERATED_BODY()

public:
	// Created with a default for ARKit-style blend shapes (jawOpen, mouthFunnel, ...); edit
	// it to match your mesh.
	UBridgeLipSyncMapping();

	// Keys: sil PP FF TH DD kk CH SS nn RR aa E I O U.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	TMap<FName, FBridgeMorphList> VisemeMorphs;

	// Keys: the character's expression preset names (ai.countenance `expression`), or the
	// emotions (neutral happy sad angry surprised afraid disgusted) when presets are not used.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	TMap<FName, FBridgeMorphList> ExpressionMorphs;

	// Crossfade between keyframes and easing of the weights, in milliseconds.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	int32 BlendMs = 60;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	float SmoothingMs = 40.0f;
};
