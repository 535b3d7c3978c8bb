#include "EntityBridgeSubsystem.h"

#include "BridgeCharacterComponent.h"
#include "BridgeStrings.h"
#include "HAL/PlatformProcess.h"
#include "Misc/FileHelper.h"
#include "Misc/Paths.h"
#include "UnrealWebSocketTransport.h"

#include "entitybridge/client.h"

using EntityBridge::FromUtf8;
using EntityBridge::Utf8;

void UEntityBridgeSubsystem::Initialize(FSubsystemCollectionBase& Collection)
{
	Super::Initialize(Collection);
}

void UEntityBridgeSubsystem::Deinitialize()
{
	Disconnect();
	StopSidecar();
	Super::Deinitialize();
}

void UEntityBridgeSubsystem::Connect()
{
	if (bLaunchSidecar)
	{
		if (!SidecarProcess.IsValid() && !StartSidecar())
		{
			OnSessionError.Broadcast(TEXT("sidecar"), TEXT("could not start ") + SidecarExecutable);
		}
		return; // Tick connects once the port file appears
	}
	StartClient(Url);
}

void UEntityBridgeSubsystem::StartClient(const FString& ConnectUrl)
{
	eb::ClientOptions Options;
	Options.url = Utf8(ConnectUrl);
	Options.framing = bMessagePack ? eb::Framing::MsgPack : eb::Framing::Json;
	Options.token = Utf8(Token);
	Options.client_name = "entity-bridge-unreal/0.1";
	Options.audio_out = eb::Value::map();
	Options.audio_out.set("sample_rate", SpeechSampleRate);
	Options.clock = []() { return static_cast<int64_t>(FPlatformTime::Seconds() * 1000.0); };

	Client.reset();
	Transport = std::make_unique<FUnrealWebSocketTransport>();
	Client = std::make_unique<eb::Client>(*Transport, Options);

	Client->on_ready = [this]()
	{
		OnConnected.Broadcast();
		for (auto& Entry : Characters)
		{
			if (UBridgeCharacterComponent* C = Entry.Value.Get())
			{
				C->HandleConnected();
			}
		}
	};
	Client->on_disconnected = [this](int Code, const std::string& Reason) { OnDisconnected.Broadcast(Code, FromUtf8(Reason)); };
	Client->on_error = [this](const std::string& Code, const std::string& Message) { OnSessionError.Broadcast(FromUtf8(Code), FromUtf8(Message)); };
	for (const TCHAR* Type : {TEXT("movement.perform"), TEXT("movement.scene.request"), TEXT("movement.actions.request")})
	{
		Client->on_bridge_request(Utf8(Type), [this](const eb::Event& Request, eb::Responder Responder)
		{
			TWeakObjectPtr<UBridgeCharacterComponent>* Found = Characters.Find(FromUtf8(Request.entity));
			if (Found && Found->IsValid())
			{
				(*Found)->HandleBridgeRequest(Request, Responder);
			}
			else
			{
				Responder.fail("backend_unavailable", "no character component for " + Request.entity);
			}
		});
	}
	for (auto& Entry : Characters)
	{
		if (UBridgeCharacterComponent* C = Entry.Value.Get())
		{
			C->AttachToClient(*Client);
		}
	}
	Client->connect();
}

void UEntityBridgeSubsystem::Disconnect()
{
	if (Client)
	{
		Client->close();
	}
}

bool UEntityBridgeSubsystem::IsReady() const
{
	return Client && Client->ready();
}

void UEntityBridgeSubsystem::RegisterCharacter(UBridgeCharacterComponent* Component)
{
	Characters.Add(Component->EntityName, Component);
	if (Client)
	{
		Component->AttachToClient(*Client);
	}
}

void UEntityBridgeSubsystem::UnregisterCharacter(UBridgeCharacterComponent* Component)
{
	Characters.Remove(Component->EntityName);
	if (Client)
	{
		Client->set_entity_listener(Utf8(Component->EntityName), nullptr);
		if (Client->ready())
		{
			Client->remove_entity(Utf8(Component->EntityName));
		}
	}
}

void UEntityBridgeSubsystem::Tick(float DeltaTime)
{
	if (bWaitingForSidecar)
	{
		FString Ready;
		if (FFileHelper::LoadFileToString(Ready, *SidecarPortFile) && Ready.StartsWith(TEXT("ws://")))
		{
			bWaitingForSidecar = false;
			StartClient(Ready.TrimStartAndEnd());
		}
		else if (!FPlatformProcess::IsProcRunning(SidecarProcess) || FPlatformTime::Seconds() > SidecarDeadline)
		{
			bWaitingForSidecar = false;
			OnSessionError.Broadcast(TEXT("sidecar"), TEXT("the bridge did not start; see its log"));
		}
	}
	if (Client)
	{
		Client->tick();
	}
}

TStatId UEntityBridgeSubsystem::GetStatId() const
{
	RETURN_QUICK_DECLARE_CYCLE_STAT(UEntityBridgeSubsystem, STATGROUP_Tickables);
}

bool UEntityBridgeSubsystem::StartSidecar()
{
	SidecarPortFile = FPaths::ConvertRelativePathToFull(FPaths::ProjectSavedDir() / TEXT("entity-bridge.url"));
	IFileManager::Get().Delete(*SidecarPortFile);
	// Our end writes, the child's stdin reads: when the game goes away the pipe closes and
	// --exit-on-stdin-eof stops the bridge.
	if (!FPlatformProcess::CreatePipe(SidecarStdinRead, SidecarStdinWrite, true))
	{
		return false;
	}
	FString Args = FString::Printf(TEXT("serve --port 0 --port-file \"%s\" --exit-on-stdin-eof"), *SidecarPortFile);
	if (!SidecarConfig.IsEmpty())
	{
		Args += FString::Printf(TEXT(" --config \"%s\""), *SidecarConfig);
	}
	SidecarProcess = FPlatformProcess::CreateProc(*SidecarExecutable, *Args, false, true, true, nullptr, 0, nullptr, nullptr, SidecarStdinRead);
	if (!SidecarProcess.IsValid())
	{
		FPlatformProcess::ClosePipe(SidecarStdinRead, SidecarStdinWrite);
		SidecarStdinRead = SidecarStdinWrite = nullptr;
		return false;
	}
	bWaitingForSidecar = true;
	SidecarDeadline = FPlatformTime::Seconds() + 60.0; // first start may load voice models
	return true;
}

void UEntityBridgeSubsystem::StopSidecar()
{
	if (!SidecarProcess.IsValid())
	{
		return;
	}
	FPlatformProcess::ClosePipe(SidecarStdinRead, SidecarStdinWrite); // EOF on its stdin
	SidecarStdinRead = SidecarStdinWrite = nullptr;
	const double Until = FPlatformTime::Seconds() + 5.0;
	while (FPlatformProcess::IsProcRunning(SidecarProcess) && FPlatformTime::Seconds() < Until)
	{
		FPlatformProcess::Sleep(0.05f);
	}
	if (FPlatformProcess::IsProcRunning(SidecarProcess))
	{
		FPlatformProcess::TerminateProc(SidecarProcess);
	}
	FPlatformProcess::CloseProc(SidecarProcess);
}
