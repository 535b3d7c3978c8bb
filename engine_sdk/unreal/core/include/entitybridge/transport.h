// The one thing the core needs from a WebSocket library, and a fragment reassembler.
//
// The core never touches sockets: a host supplies a Transport (Unreal's IWebSocket in the
// plugin, Boost.Beast in the tests) and delivers its callbacks on the thread that owns the
// Client (the game thread in Unreal). Whole messages only reach the Client: Unreal's
// IWebSocket hands binary messages over in fragments (OnBinaryMessage(Data, Size,
// bIsLastFragment) / OnRawMessage(Data, Size, BytesRemaining)), so a transport built on such an
// API feeds them through FragmentAssembler first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace eb {

class TransportListener {
public:
    virtual ~TransportListener() = default;
    virtual void on_open() = 0;
    virtual void on_message(const uint8_t* data, size_t size, bool binary) = 0;
    // The connection ended (closed by either side, or failed to open). `code` is the
    // WebSocket close code when one was received, else 1006.
    virtual void on_closed(int code, const std::string& reason) = 0;
};

class Transport {
public:
    using Headers = std::vector<std::pair<std::string, std::string>>;
    virtual ~Transport() = default;
    virtual void set_listener(TransportListener* listener) = 0;
    // Starts connecting; the listener later gets on_open or on_closed.
    virtual void connect(const std::string& url, const Headers& headers) = 0;
    // False when the message could not be queued (not connected).
    virtual bool send(const uint8_t* data, size_t size, bool binary) = 0;
    virtual void close(int code, const std::string& reason) = 0;
};

// Joins fragments of one message. Bounded: a message growing past `max_bytes` is dropped and
// reported, so a peer cannot make the game allocate without limit.
class FragmentAssembler {
public:
    enum class Result { Partial, Complete, TooLarge };

    explicit FragmentAssembler(size_t max_bytes = 16u << 20) : max_bytes_(max_bytes) {}

    // `last` is true on the final fragment. On Complete, message() holds the whole message
    // until the next feed.
    Result feed(const uint8_t* data, size_t size, bool last);
    const std::vector<uint8_t>& message() const { return done_; }
    void reset() { buffer_.clear(); done_.clear(); overflowed_ = false; }

private:
    size_t max_bytes_;
    std::vector<uint8_t> buffer_;
    std::vector<uint8_t> done_;
    bool overflowed_ = false;
};

}  // namespace eb
