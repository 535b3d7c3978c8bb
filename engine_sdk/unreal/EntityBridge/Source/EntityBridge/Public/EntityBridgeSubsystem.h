// One connection to the Entity Bridge per game instance, shared by every character.
//
// Owns the core's eb::Client and its IWebSocket transport, ticks them on the game thread,
// routes each entity's events to its UBridgeCharacterComponent, and can launch the bridge as
// a sidecar process (FPlatformProcess::CreateProc with --port 0 --port-file and
// --exit-on-stdin-eof, so the bridge exits with the game).
#pragma once

#include "CoreMinimal.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "Tickable.h"

#include <memory>
#include <string>

#include "EntityBridgeSubsystem.generated.h"

class UBridgeCharacterComponent;
class FUnrealWebSocketTransport;
namespace eb { class Client; }

DECLARE_DYNAMIC_MULTICAST_DELEGATE(FBridgeConnected);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FBridgeDisconnected, int32, Code, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FBridgeSessionError, const FString&, Code, const FString&, Message);

UCLASS(Config = Game)
class ENTITYBRIDGE_API UEntityBridgeSubsystem : public UGameInstanceSubsystem, public FTickableGameObject
{
	GENERATED_BODY()

public:
	// The bridge's URL; with bLaunchSidecar the sidecar's own URL replaces it.
	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	FString Url = TEXT("ws://127.0.0.1:8765/");

	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	FString Token;

	// MessagePack (binary) framing; JSON text framing when false.
	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	bool bMessagePack = true;

	// The rate speech is delivered at: match the audio mixer (48000 on most platforms).
	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	int32 SpeechSampleRate = 48000;

	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge|Sidecar")
	bool bLaunchSidecar = false;

	// Path to the `entity-bridge` executable, and the bridge.toml it should read.
	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge|Sidecar")
	FString SidecarExecutable;

	UPROPERTY(Config, EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge|Sidecar")
	FString SidecarConfig;

	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge")
	FBridgeConnected OnConnected;

	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge")
	FBridgeDisconnected OnDisconnected;

	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge")
	FBridgeSessionError OnSessionError;

	virtual void Initialize(FSubsystemCollectionBase& Collection) override;
	virtual void Deinitialize() override;

	// Connects (or launches the sidecar first). Safe to call again after Disconnect.
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Connect();

	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Disconnect();

	UFUNCTION(BlueprintPure, Category = "Entity Bridge")
	bool IsReady() const;

	// Components call these (game thread only).
	void RegisterCharacter(UBridgeCharacterComponent* Component);
	void UnregisterCharacter(UBridgeCharacterComponent* Component);
	eb::Client* GetClient() const { return Client.get(); }

	// FTickableGameObject
	virtual void Tick(float DeltaTime) override;
	virtual TStatId GetStatId() const override;
	virtual bool IsTickable() const override { return !IsTemplate(); }
	virtual bool IsTickableWhenPaused() const override { return true; }

private:
	bool StartSidecar();
	void StopSidecar();
	void StartClient(const FString& ConnectUrl);

	std::unique_ptr<FUnrealWebSocketTransport> Transport;
	std::unique_ptr<eb::Client> Client;
	TMap<FString, TWeakObjectPtr<UBridgeCharacterComponent>> Characters;

	FProcHandle SidecarProcess;
	void* SidecarStdinRead = nullptr;
	void* SidecarStdinWrite = nullptr;
	FString SidecarPortFile;
	bool bWaitingForSidecar = false;
	double SidecarDeadline = 0.0;
};
