#include "BridgeCharacterComponent.h"

#include "BridgeLipSyncMapping.h"
#include "BridgeSpeechSoundWave.h"
#include "BridgeStrings.h"
#include "Components/AudioComponent.h"
#include "Components/SkeletalMeshComponent.h"
#include "EntityBridgeSubsystem.h"
#include "Engine/GameInstance.h"
#include "GameFramework/Actor.h"

#include "entitybridge/client.h"
#include "entitybridge/json.h"
#include "entitybridge/mic.h"
#include "entitybridge/speech_buffer.h"
#include "entitybridge/timeline.h"

using EntityBridge::FromUtf8;
using EntityBridge::Utf8;

// ------------------------------------------------------------------ UBridgeActionRequest

void UBridgeActionRequest::Succeed(const FString& Feedback, const FString& PayloadJsonReply)
{
	if (!Responder)
	{
		return;
	}
	eb::Value Payload = eb::Value::map();
	if (!PayloadJsonReply.IsEmpty())
	{
		eb::Value Parsed;
		if (eb::json_decode(Utf8(PayloadJsonReply), Parsed) && Parsed.is_map())
		{
			Payload = Parsed;
		}
	}
	if (!Feedback.IsEmpty())
	{
		Payload.set("feedback", Utf8(Feedback));
	}
	Responder->succeed(Payload);
	Responder.reset();
}

void UBridgeActionRequest::Fail(const FString& Message)
{
	if (Responder)
	{
		Responder->fail("backend_error", Utf8(Message));
		Responder.reset();
	}
}

// ------------------------------------------------------------------ UBridgeCharacterComponent

UBridgeCharacterComponent::UBridgeCharacterComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
}

void UBridgeCharacterComponent::BeginPlay()
{
	Super::BeginPlay();
	UEntityBridgeSubsystem* Bridge = GetWorld()->GetGameInstance()->GetSubsystem<UEntityBridgeSubsystem>();
	const int32 Rate = Bridge ? Bridge->SpeechSampleRate : 48000;
	Speech = std::make_shared<eb::SpeechBuffer>(Rate);
	const int32 Blend = LipSyncMapping ? LipSyncMapping->BlendMs : 60;
	Timeline = std::make_unique<eb::Timeline>(Blend);
	Smoother = std::make_unique<eb::Smoother>(LipSyncMapping ? LipSyncMapping->SmoothingMs : 40.0f);
	Mic = std::make_unique<eb::MicChunker>(16000, 40);

	Wave = NewObject<UBridgeSpeechSoundWave>(this);
	Wave->SetBuffer(Speech);
	Voice = NewObject<UAudioComponent>(GetOwner());
	Voice->bAutoActivate = false;
	Voice->SetSound(Wave);
	if (USceneComponent* Root = GetOwner()->GetRootComponent())
	{
		Voice->SetupAttachment(Root);
	}
	Voice->RegisterComponent();
	Voice->Play();

	if (!FaceMesh)
	{
		FaceMesh = GetOwner()->FindComponentByClass<USkeletalMeshComponent>();
	}
	if (Bridge)
	{
		Bridge->RegisterCharacter(this);
	}
}

void UBridgeCharacterComponent::EndPlay(const EEndPlayReason::Type Reason)
{
	StopListening();
	if (UGameInstance* GI = GetWorld() ? GetWorld()->GetGameInstance() : nullptr)
	{
		if (UEntityBridgeSubsystem* Bridge = GI->GetSubsystem<UEntityBridgeSubsystem>())
		{
			Bridge->UnregisterCharacter(this);
		}
	}
	if (Voice)
	{
		Voice->Stop();
	}
	if (Wave)
	{
		Wave->SetBuffer(nullptr);
	}
	Client = nullptr;
	Super::EndPlay(Reason);
}

void UBridgeCharacterComponent::AttachToClient(eb::Client& InClient)
{
	Client = &InClient;
	TWeakObjectPtr<UBridgeCharacterComponent> Weak(this);
	Client->set_entity_listener(Utf8(EntityName), [Weak](const eb::Event& E)
	{
		if (UBridgeCharacterComponent* Self = Weak.Get())
		{
			Self->HandleEvent(E);
		}
	});
	if (Client->ready())
	{
		HandleConnected();
	}
}

void UBridgeCharacterComponent::HandleConnected()
{
	// The client re-creates known entities itself after a reconnect; this is the first time.
	if (Client && Client->ready())
	{
		TWeakObjectPtr<UBridgeCharacterComponent> Weak(this);
		Client->init_entity(Utf8(EntityName), eb::Value(Utf8(CharacterName)), [Weak](const eb::Reply& R)
		{
			UBridgeCharacterComponent* Self = Weak.Get();
			if (Self && !R.ok && R.code != "entity_exists")
			{
				Self->OnBridgeError.Broadcast(FromUtf8(R.code), FromUtf8(R.message));
			}
		});
	}
}

void UBridgeCharacterComponent::HandleEvent(const eb::Event& E)
{
	Speech->handle(E);
	Timeline->handle(E);
	const eb::Value& P = E.payload;
	if (E.type == "ai.text")
	{
		OnTextDelta.Broadcast(FromUtf8(P.str_or("delta")));
	}
	else if (E.type == "ai.action")
	{
		OnAction.Broadcast(FromUtf8(P.str_or("text")));
	}
	else if (E.type == "ai.countenance")
	{
		OnEmotion.Broadcast(FromUtf8(P.str_or("emotion")), static_cast<float>(P.get("intensity").as_double(1.0)), FromUtf8(P.str_or("expression")));
	}
	else if (E.type == "stt.transcript")
	{
		OnTranscript.Broadcast(FromUtf8(P.str_or("text")), P.get("final").as_bool());
	}
	else if (E.type == "stt.speech.started")
	{
		// Barge-in is the bridge's: it interrupts the turn; drop what is buffered at once.
		Speech->flush();
	}
}

void UBridgeCharacterComponent::HandleBridgeRequest(const eb::Event& Request, const eb::Responder& Responder)
{
	UBridgeActionRequest* R = NewObject<UBridgeActionRequest>(this);
	R->Type = FromUtf8(Request.type);
	R->ActionName = FromUtf8(Request.payload.get("actions").at(0).str_or("name"));
	R->PayloadJson = FromUtf8(eb::json_encode(Request.payload));
	R->Responder = std::make_shared<eb::Responder>(Responder);
	if (!OnBridgeRequest.IsBound())
	{
		R->Fail(TEXT("this character cannot do that"));
		return;
	}
	OnBridgeRequest.Broadcast(R);
}

namespace
{
eb::ReplyHandler ReplyTo(TWeakObjectPtr<UBridgeCharacterComponent> Weak)
{
	return [Weak](const eb::Reply& R)
	{
		UBridgeCharacterComponent* Self = Weak.Get();
		if (!Self)
		{
			return;
		}
		if (R.ok)
		{
			const eb::Value& P = R.event.payload;
			Self->OnReply.Broadcast(FromUtf8(P.str_or("reply")), FromUtf8(P.str_or("spoken")), P.get("interrupted").as_bool());
		}
		else if (R.code != "cancelled")
		{
			Self->OnBridgeError.Broadcast(FromUtf8(R.code), FromUtf8(R.message));
		}
	};
}
} // namespace

void UBridgeCharacterComponent::Say(const FString& Text)
{
	if (Client)
	{
		Client->say(Utf8(EntityName), Utf8(Text), ReplyTo(this));
	}
}

void UBridgeCharacterComponent::Speak(const FString& Text)
{
	if (Client)
	{
		Client->speak(Utf8(EntityName), Utf8(Text), ReplyTo(this));
	}
}

void UBridgeCharacterComponent::Interrupt()
{
	const int64_t Played = Speech ? Speech->flush() : -1;
	if (Client)
	{
		Client->interrupt(Utf8(EntityName), Played);
	}
}

void UBridgeCharacterComponent::WorldEvent(const FString& Text, bool bRespond)
{
	if (!Client)
	{
		return;
	}
	eb::Value Payload = eb::Value::map();
	Payload.set("text", Utf8(Text));
	Payload.set("respond", bRespond);
	Client->request("world.event", Utf8(EntityName), Payload, ReplyTo(this));
}

bool UBridgeCharacterComponent::StartListening()
{
	if (bListening || !Client)
	{
		return bListening;
	}
	Audio::FAudioCaptureDeviceParams Params; // the default device
	Audio::FOnAudioCaptureFunction OnCapture = [this](const void* Data, int32 NumFrames, int32 NumChannels, int32 SampleRate, double, bool)
	{
		// Capture thread: only the chunker, under its lock.
		FScopeLock Lock(&MicLock);
		Mic->push(static_cast<const float*>(Data), static_cast<size_t>(NumFrames), NumChannels, SampleRate);
	};
	if (!Capture.OpenAudioCaptureStream(Params, MoveTemp(OnCapture), 1024) || !Capture.StartStream())
	{
		OnBridgeError.Broadcast(TEXT("microphone"), TEXT("could not open the default capture device"));
		return false;
	}
	eb::Value Listen = eb::Value::map();
	Listen.set("mode", "vad");
	Client->request("stt.listen.start", Utf8(EntityName), Listen, nullptr);
	bListening = true;
	return true;
}

void UBridgeCharacterComponent::StopListening()
{
	if (!bListening)
	{
		return;
	}
	Capture.StopStream();
	Capture.CloseStream();
	bListening = false;
	SendMicChunks();
	if (Client)
	{
		Client->request("stt.listen.stop", Utf8(EntityName), eb::Value::map(), nullptr);
	}
	FScopeLock Lock(&MicLock);
	Mic->reset();
}

void UBridgeCharacterComponent::SendMicChunks()
{
	std::vector<std::string> Chunks;
	{
		FScopeLock Lock(&MicLock);
		Chunks = Mic->take();
	}
	for (std::string& Chunk : Chunks)
	{
		if (Client)
		{
			Client->send("stt.audio", Utf8(EntityName), Mic->payload(std::move(Chunk)));
		}
	}
}

void UBridgeCharacterComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	if (!Speech)
	{
		return;
	}
	if (Client && Client->ready())
	{
		for (const eb::SpeechBuffer::Report& Report : Speech->poll_reports())
		{
			Client->send(Report.type(), Utf8(EntityName), Report.payload());
		}
	}
	if (bListening)
	{
		SendMicChunks();
	}
	ApplyFace(DeltaTime * 1000.0f);
}

void UBridgeCharacterComponent::ApplyFace(float DeltaMs)
{
	if (!FaceMesh || !LipSyncMapping)
	{
		return;
	}
	std::string SpeechId;
	int64_t Ms = 0;
	eb::VisemeWeights Target{};
	Target[0] = 1.0f;
	eb::Expression Mood;
	if (Speech->playhead(SpeechId, Ms))
	{
		Target = Timeline->weights_at(SpeechId, Ms);
		Mood = Timeline->expression_at(SpeechId, Ms);
	}
	else
	{
		Mood = Timeline->expression_at("", 0);
	}
	const eb::VisemeWeights& W = Smoother->step(Target, DeltaMs);

	// Several visemes may drive one morph target: sum, then clamp.
	TMap<FName, float> Morphs;
	for (const FName& Name : LastMorphs)
	{
		Morphs.Add(Name, 0.0f);
	}
	for (int32 I = 0; I < eb::kVisemeCount; ++I)
	{
		if (const FBridgeMorphList* List = LipSyncMapping->VisemeMorphs.Find(FName(eb::kVisemeNames[I])))
		{
			for (const FBridgeMorphWeight& M : List->Morphs)
			{
				Morphs.FindOrAdd(M.MorphTarget) += W[I] * M.Scale;
			}
		}
	}
	const FName Preset(FromUtf8(Mood.expression.empty() ? Mood.emotion : Mood.expression));
	if (const FBridgeMorphList* List = LipSyncMapping->ExpressionMorphs.Find(Preset))
	{
		for (const FBridgeMorphWeight& M : List->Morphs)
		{
			Morphs.FindOrAdd(M.MorphTarget) += Mood.intensity * M.Scale;
		}
	}
	LastMorphs.Reset();
	for (const auto& Entry : Morphs)
	{
		FaceMesh->SetMorphTarget(Entry.Key, FMath::Clamp(Entry.Value, 0.0f, 1.0f));
		LastMorphs.Add(Entry.Key);
	}
}
