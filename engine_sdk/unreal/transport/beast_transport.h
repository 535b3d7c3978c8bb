// A portable eb::Transport on Boost.Beast, for the tests, the examples and non-Unreal hosts.
//
// Beast stays behind a pimpl so that this is the only translation unit that includes it
// (it costs ~15 s of compile time per TU). The socket runs on its own thread (so reading never
// waits for the game, the protocol's advice against stalled clients); callbacks are queued and
// delivered on the host's thread by poll()/wait(), so the Client stays single-threaded, as
// it is inside Unreal where IWebSocket delivers on the game thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "entitybridge/transport.h"

namespace eb {

class BeastTransport : public Transport {
public:
    BeastTransport();
    ~BeastTransport() override;
    BeastTransport(const BeastTransport&) = delete;
    BeastTransport& operator=(const BeastTransport&) = delete;

    void set_listener(TransportListener* listener) override { listener_ = listener; }
    void connect(const std::string& url, const Headers& headers) override;
    bool send(const uint8_t* data, size_t size, bool binary) override;
    void close(int code, const std::string& reason) override;

    // Delivers the queued callbacks on the calling thread; returns how many.
    size_t poll();
    // Like poll(), but first waits up to `timeout_ms` for at least one callback.
    size_t wait(int timeout_ms);

    // Drops the TCP connection without a close handshake (tests: a crashed peer).
    void abort();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    TransportListener* listener_ = nullptr;
};

}  // namespace eb
