// eb::Transport on Unreal's IWebSocket (WebSockets module).
//
// Binary messages arrive in fragments (OnBinaryMessage(Data, Size, bIsLastFragment)); they are
// joined by eb::FragmentAssembler (tested in the core's suite) before the Client sees them.
// Callbacks are delivered on the game thread: they are forwarded directly when they already
// run there and posted to it otherwise, so the single-threaded Client is only ever touched by
// the game thread.
#pragma once

#include "CoreMinimal.h"
#include "IWebSocket.h"

#include "entitybridge/transport.h"

class FUnrealWebSocketTransport : public eb::Transport
{
public:
	FUnrealWebSocketTransport();
	virtual ~FUnrealWebSocketTransport() override;

	virtual void set_listener(eb::TransportListener* InListener) override { Listener = InListener; }
	virtual void connect(const std::string& Url, const Headers& InHeaders) override;
	virtual bool send(const uint8_t* Data, size_t Size, bool bBinary) override;
	virtual void close(int Code, const std::string& Reason) override;

private:
	void OnGameThread(TFunction<void()> Work);
	void Unbind();

	TSharedPtr<IWebSocket> Socket;
	eb::TransportListener* Listener = nullptr;
	eb::FragmentAssembler Assembler;
	// Posted callbacks check this token: none runs after the transport is gone.
	TSharedRef<bool, ESPMode::ThreadSafe> Alive;
};
