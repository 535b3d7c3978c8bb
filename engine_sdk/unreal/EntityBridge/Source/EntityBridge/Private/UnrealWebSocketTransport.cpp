// FUnrealWebSocketTransport: see UnrealWebSocketTransport.h.
#include "UnrealWebSocketTransport.h"

#include "Async/Async.h"
#include "BridgeStrings.h"
#include "WebSocketsModule.h"

using EntityBridge::FromUtf8;

FUnrealWebSocketTransport::FUnrealWebSocketTransport()
	: Alive(MakeShared<bool, ESPMode::ThreadSafe>(true))
{
}

FUnrealWebSocketTransport::~FUnrealWebSocketTransport()
{
	*Alive = false;
	Unbind();
	if (Socket.IsValid() && Socket->IsConnected())
	{
		Socket->Close(1000, TEXT("bye"));
	}
}

void FUnrealWebSocketTransport::OnGameThread(TFunction<void()> Work)
{
	if (IsInGameThread())
	{
		Work();
		return;
	}
	TWeakPtr<bool, ESPMode::ThreadSafe> Token = Alive;
	AsyncTask(ENamedThreads::GameThread, [Token, Work = MoveTemp(Work)]()
	{
		TSharedPtr<bool, ESPMode::ThreadSafe> Pinned = Token.Pin();
		if (Pinned.IsValid() && *Pinned)
		{
			Work();
		}
	});
}

void FUnrealWebSocketTransport::Unbind()
{
	if (!Socket.IsValid())
	{
		return;
	}
	Socket->OnConnected().Clear();
	Socket->OnConnectionError().Clear();
	Socket->OnClosed().Clear();
	Socket->OnMessage().Clear();
	Socket->OnBinaryMessage().Clear();
}

void FUnrealWebSocketTransport::connect(const std::string& Url, const Headers& InHeaders)
{
	Unbind();
	Assembler.reset();
	TMap<FString, FString> UpgradeHeaders;
	for (const auto& Header : InHeaders)
	{
		UpgradeHeaders.Add(FromUtf8(Header.first), FromUtf8(Header.second));
	}
	FWebSocketsModule& Module = FModuleManager::LoadModuleChecked<FWebSocketsModule>(TEXT("WebSockets"));
	// No subprotocol: the bridge does not negotiate one.
	Socket = Module.CreateWebSocket(FromUtf8(Url), TArray<FString>(), UpgradeHeaders);

	Socket->OnConnected().AddLambda([this]()
	{
		OnGameThread([this]() { if (Listener) Listener->on_open(); });
	});
	Socket->OnConnectionError().AddLambda([this](const FString& Error)
	{
		const std::string Reason = EntityBridge::Utf8(Error);
		OnGameThread([this, Reason]() { if (Listener) Listener->on_closed(1006, Reason); });
	});
	Socket->OnClosed().AddLambda([this](int32 StatusCode, const FString& Reason, bool bWasClean)
	{
		const std::string Why = EntityBridge::Utf8(Reason);
		OnGameThread([this, StatusCode, Why]() { if (Listener) Listener->on_closed(StatusCode, Why); });
	});
	// Text frames (JSON framing) arrive whole, as FString.
	Socket->OnMessage().AddLambda([this](const FString& Message)
	{
		std::string Bytes = EntityBridge::Utf8(Message);
		OnGameThread([this, Bytes = MoveTemp(Bytes)]()
		{
			if (Listener) Listener->on_message(reinterpret_cast<const uint8_t*>(Bytes.data()), Bytes.size(), false);
		});
	});
	// Binary frames (MessagePack) arrive in fragments.
	Socket->OnBinaryMessage().AddLambda([this](const void* Data, SIZE_T Size, bool bIsLastFragment)
	{
		std::string Piece(static_cast<const char*>(Data), static_cast<size_t>(Size));
		OnGameThread([this, Piece = MoveTemp(Piece), bIsLastFragment]()
		{
			const auto Result = Assembler.feed(reinterpret_cast<const uint8_t*>(Piece.data()), Piece.size(), bIsLastFragment);
			if (Result == eb::FragmentAssembler::Result::Complete && Listener)
			{
				const std::vector<uint8_t>& Message = Assembler.message();
				Listener->on_message(Message.data(), Message.size(), true);
			}
			else if (Result == eb::FragmentAssembler::Result::TooLarge)
			{
				UE_LOG(LogTemp, Warning, TEXT("EntityBridge: dropped a binary message over the size limit"));
			}
		});
	});
	Socket->Connect();
}

bool FUnrealWebSocketTransport::send(const uint8_t* Data, size_t Size, bool bBinary)
{
	if (!Socket.IsValid() || !Socket->IsConnected())
	{
		return false;
	}
	if (bBinary)
	{
		Socket->Send(Data, static_cast<SIZE_T>(Size), true);
	}
	else
	{
		Socket->Send(FromUtf8(std::string(reinterpret_cast<const char*>(Data), Size)));
	}
	return true;
}

void FUnrealWebSocketTransport::close(int Code, const std::string& Reason)
{
	if (Socket.IsValid())
	{
		Socket->Close(Code, FromUtf8(Reason));
	}
}
