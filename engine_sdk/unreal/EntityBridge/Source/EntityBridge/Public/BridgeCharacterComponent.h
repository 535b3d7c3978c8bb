// An AI character on an actor: its entity on the bridge, its voice, lip sync and microphone.
//
// Everything here runs on the game thread (UObjects are not thread-safe), except two hand-offs
// owned by the core: the speech ring buffer, which the audio thread drains through
// UBridgeSpeechSoundWave, and the microphone chunker, fed on the capture thread under a lock.
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "AudioCaptureCore.h"

#include <memory>
#include <string>

#include "BridgeCharacterComponent.generated.h"

class UAudioComponent;
class UBridgeLipSyncMapping;
class UBridgeSpeechSoundWave;
class USkeletalMeshComponent;
class UEntityBridgeSubsystem;
namespace eb { class Client; class Responder; class SpeechBuffer; class Timeline; class Smoother; class MicChunker; struct Event; }

// A request from the bridge (movement.perform & co.): answer it exactly once.
UCLASS(BlueprintType)
class ENTITYBRIDGE_API UBridgeActionRequest : public UObject
{
	GENERATED_BODY()

public:
	// movement.perform, movement.scene.request or movement.actions.request.
	UPROPERTY(BlueprintReadOnly, Category = "Entity Bridge")
	FString Type;

	// The first action's name and its args as JSON (movement.perform).
	UPROPERTY(BlueprintReadOnly, Category = "Entity Bridge")
	FString ActionName;

	UPROPERTY(BlueprintReadOnly, Category = "Entity Bridge")
	FString PayloadJson;

	// Success; Feedback (optional) is read by the LLM. For scene/actions requests pass the
	// payload as JSON in PayloadJsonReply instead.
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Succeed(const FString& Feedback, const FString& PayloadJsonReply);

	// Failure; Message is read by the LLM, e.g. "the door is locked".
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Fail(const FString& Message);

	std::shared_ptr<eb::Responder> Responder;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FBridgeTextDelta, const FString&, Delta);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FBridgeReply, const FString&, Reply, const FString&, Spoken, bool, bInterrupted);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FBridgeAction, const FString&, Text);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FBridgeEmotion, const FString&, Emotion, float, Intensity, const FString&, Expression);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FBridgeTranscript, const FString&, Text, bool, bFinal);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FBridgeError, const FString&, Code, const FString&, Message);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FBridgeRequest, UBridgeActionRequest*, Request);

UCLASS(ClassGroup = (EntityBridge), meta = (BlueprintSpawnableComponent))
class ENTITYBRIDGE_API UBridgeCharacterComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UBridgeCharacterComponent();

	// The entity's name on the connection (unique per character in the level).
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	FString EntityName = TEXT("npc-1");

	// A character from the bridge's config.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge")
	FString CharacterName = TEXT("mira");

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge|Lip Sync")
	TObjectPtr<UBridgeLipSyncMapping> LipSyncMapping;

	// The face mesh; the owner's first skeletal mesh when left empty.
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "Entity Bridge|Lip Sync")
	TObjectPtr<USkeletalMeshComponent> FaceMesh;

	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeTextDelta OnTextDelta;
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeReply OnReply;
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeAction OnAction;
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeEmotion OnEmotion;
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeTranscript OnTranscript;
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeError OnBridgeError;
	// movement.perform / movement.scene.request / movement.actions.request from the bridge.
	UPROPERTY(BlueprintAssignable, Category = "Entity Bridge") FBridgeRequest OnBridgeRequest;

	// The player says something; the character answers (OnTextDelta..., then OnReply).
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Say(const FString& Text);

	// The character speaks this line as is (no LLM).
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Speak(const FString& Text);

	// Barge-in: stop speaking now; the bridge keeps only what was heard.
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void Interrupt();

	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void WorldEvent(const FString& Text, bool bRespond);

	// Microphone -> stt.audio, with the bridge's voice activity detection.
	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	bool StartListening();

	UFUNCTION(BlueprintCallable, Category = "Entity Bridge")
	void StopListening();

	// Called by the subsystem.
	void AttachToClient(eb::Client& InClient);
	void HandleConnected();
	void HandleEvent(const eb::Event& Event);
	void HandleBridgeRequest(const eb::Event& Request, const eb::Responder& Responder);

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type Reason) override;
	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

private:
	void ApplyFace(float DeltaMs);
	void SendMicChunks();

	UPROPERTY() TObjectPtr<UAudioComponent> Voice;
	UPROPERTY() TObjectPtr<UBridgeSpeechSoundWave> Wave;

	eb::Client* Client = nullptr;
	std::shared_ptr<eb::SpeechBuffer> Speech;
	std::unique_ptr<eb::Timeline> Timeline;
	std::unique_ptr<eb::Smoother> Smoother;
	TArray<FName> LastMorphs;

	Audio::FAudioCapture Capture;
	FCriticalSection MicLock;
	std::unique_ptr<eb::MicChunker> Mic;
	bool bListening = false;
};
