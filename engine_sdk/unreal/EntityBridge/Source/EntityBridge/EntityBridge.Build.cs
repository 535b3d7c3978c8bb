// Build rules for the Entity Bridge runtime module.
//
// The engine-agnostic C++ core (engine_sdk/unreal/core, tested outside Unreal against the real
// bridge) is compiled here as module source: package.sh copies it to Private/Core. It needs
// neither exceptions nor RTTI, so the module keeps Unreal's defaults for both.
using System.IO;
using UnrealBuildTool;

public class EntityBridge : ModuleRules
{
	public EntityBridge(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		// The core is C++17 and also builds as C++20 (checked with g++ 12 and clang 14), so the
		// engine's default standard is kept.
		// The core's .cpp files each keep helpers in anonymous namespaces; compiling them one by
		// one rules out clashes that a unity build could create.
		bUseUnity = false;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine" });
		PrivateDependencyModuleNames.AddRange(new string[] { "WebSockets", "AudioMixer", "AudioCaptureCore", "Projects" });

		PrivateIncludePaths.Add(Path.Combine(ModuleDirectory, "Private", "Core", "include"));
	}
}
