// The EEP/1 client state machine: hello, requests and their one final reply, pending
// tracking, timeouts, entities, the bridge's own requests, clean close and reconnect.
//
// Sans-I/O and single-threaded: the host owns a Transport, delivers its callbacks and calls
// tick() on one thread (the game thread in Unreal), and every callback below runs there too,
// from inside those calls. Time comes from `ClientOptions::clock` so tests can drive it.
// The model follows the Python SDK (engine_sdk/python/entity_bridge_sdk/client.py): final
// replies complete the request that waits for them; everything else goes to the entity's
// listener and to on_event; outputs of a request (events whose `ref` is its id) can be
// collected with the reply.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "entitybridge/event.h"
#include "entitybridge/transport.h"
#include "entitybridge/value.h"

namespace eb {

constexpr int kProtocolVersion = 1;

struct ClientOptions {
    std::string url = "ws://127.0.0.1:8765/";
    Framing framing = Framing::MsgPack;
    std::string client_name = "entity-bridge-unreal/0.1";
    std::string token;  // sent in the hello when not empty
    Value audio_out;  // e.g. {"sample_rate": 48000}; nil = the bridge's default
    Value audio_in;
    std::string visemes = "ovr15";  // or "none"
    bool text_deltas = true;
    std::string scope;
    Transport::Headers headers;
    int64_t request_timeout_ms = 60000;
    bool reconnect = true;
    int64_t backoff_initial_ms = 250;
    int64_t backoff_max_ms = 5000;
    std::function<int64_t()> clock;  // milliseconds, monotonic; default: steady_clock
};

// The end of one request: the bridge's final reply, or a local failure whose code is
// `timeout`, `connection_lost` or `closed` (then `event` holds only type, id and entity).
struct Reply {
    Event event;
    bool ok = false;
    std::string code;
    std::string message;
    bool was_pending = false;  // a `pending` reply came first
    std::vector<Event> outputs;  // events with ref == this id, when collected
};

using ReplyHandler = std::function<void(const Reply&)>;

struct RequestOptions {
    int64_t timeout_ms = -1;  // -1: ClientOptions::request_timeout_ms; 0: none
    bool collect_outputs = false;
};

class Client;

// Answers one request from the bridge (movement.perform & co.) exactly once. Copies share
// one answer; if every copy is dropped unanswered, an error reply is sent so the bridge never
// waits forever. An answer after the connection it came on is gone is dropped.
class Responder {
public:
    void succeed(Value payload = Value::map());
    void fail(const std::string& code, const std::string& message);
    bool answered() const;
    const Event& request() const;

private:
    friend class Client;
    struct State;
    std::shared_ptr<State> state_;
};

using BridgeRequestHandler = std::function<void(const Event& request, Responder responder)>;

class Client : private TransportListener {
public:
    enum class State { Idle, Connecting, Handshaking, Ready, Reconnecting, Closed };

    Client(Transport& transport, ClientOptions options);
    ~Client() override;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void connect();
    // Clean close (1000); no reconnect. Waiting requests end with code `closed`.
    void close();
    // Timeouts and the reconnect timer. Call every frame.
    void tick();

    // A request: returns its id. While connecting it is queued and sent once the hello
    // succeeded; when closed it fails at once (the handler runs before this returns).
    std::string request(const std::string& type, const std::string& entity, Value payload,
                        ReplyHandler on_reply, RequestOptions options = {});
    // An event without reply tracking (stt.audio, playback.progress): returns false when it
    // could not be sent. A later error reply about it reaches on_error.
    bool send(const std::string& type, const std::string& entity, Value payload);

    // Entities are remembered and created again after a reconnect.
    std::string init_entity(const std::string& name, Value character, ReplyHandler on_reply = nullptr);
    std::string remove_entity(const std::string& name, ReplyHandler on_reply = nullptr);
    std::string say(const std::string& entity, const std::string& text, ReplyHandler on_reply = nullptr,
                    RequestOptions options = {});
    std::string speak(const std::string& entity, const std::string& text, ReplyHandler on_reply = nullptr,
                      RequestOptions options = {});
    std::string interrupt(const std::string& entity, int64_t played_ms = -1, ReplyHandler on_reply = nullptr);

    void set_entity_listener(const std::string& entity, std::function<void(const Event&)> listener);
    // Handles the bridge's requests of `type` (movement.perform, movement.scene.request,
    // movement.actions.request). Without a handler they are answered with an error.
    void on_bridge_request(const std::string& type, BridgeRequestHandler handler);

    State state() const { return state_; }
    bool ready() const { return state_ == State::Ready; }
    // Requests of the game still waiting for their final reply (the hello and untracked
    // send()s not counted).
    size_t pending() const;
    bool is_pending(const std::string& id) const;  // true once the bridge said `pending`
    const Value& hello() const { return hello_; }  // the hello's success payload
    int connection_count() const { return connections_; }
    int64_t now() const;

    // Host callbacks (all optional).
    std::function<void()> on_ready;  // hello succeeded (again after each reconnect)
    std::function<void(const Event&)> on_event;  // every event that is not a reply to us
    std::function<void(const std::string& entity, const Reply&)> on_entity_init;  // incl. re-inits
    std::function<void(int code, const std::string& reason)> on_disconnected;
    std::function<void(const std::string& code, const std::string& message)> on_error;

private:
    struct Waiting {
        std::string type, entity;
        ReplyHandler handler;
        int64_t deadline = 0;  // 0 = none
        bool collect = false;
        bool pending = false;
        bool silent = false;  // from send(): only an error is reported
        std::vector<Event> outputs;
    };
    struct Queued {
        Event event;
        std::string id;
    };

    void on_open() override;
    void on_message(const uint8_t* data, size_t size, bool binary) override;
    void on_closed(int code, const std::string& reason) override;

    std::string next_id();
    bool transmit(const Event& event);
    void send_hello();
    void on_hello(const Reply& reply);
    void route(Event event);
    void handle_bridge_request(const Event& event);
    void finish(const std::string& id, Reply reply);
    void fail_all(const std::string& code, const std::string& message, bool keep_queued);
    void fail_local(const std::string& id, const std::string& code, const std::string& message);
    void schedule_reconnect();
    std::string submit(Event event, ReplyHandler handler, RequestOptions options, bool silent);

    friend class Responder;
    void answer(const Event& request, int generation, bool ok, Value payload);

    Transport& transport_;
    ClientOptions options_;
    State state_ = State::Idle;
    Value hello_;
    uint64_t next_id_ = 1;
    int connections_ = 0;  // generation: bumped on each open
    bool user_closed_ = false;
    bool link_up_ = false;  // between on_open and on_closed
    int64_t backoff_ms_;
    int64_t reconnect_at_ = 0;
    std::string hello_id_;
    std::map<std::string, Waiting> waiting_;
    std::vector<Queued> queued_;
    std::map<std::string, Value> entities_;  // name -> character, for re-creation
    std::map<std::string, std::function<void(const Event&)>> listeners_;
    std::map<std::string, BridgeRequestHandler> bridge_handlers_;
    std::shared_ptr<Client*> self_;  // Responders hold a weak_ptr: answers after ~Client are dropped
};

}  // namespace eb
