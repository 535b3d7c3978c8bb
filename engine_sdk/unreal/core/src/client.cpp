// Client state machine: see client.h.
#include "entitybridge/client.h"

#include <algorithm>
#include <chrono>

namespace eb {

namespace {
bool is_bridge_request_type(const std::string& type) {
    return type == "movement.perform" || type == "movement.scene.request" || type == "movement.actions.request";
}

int64_t steady_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// ------------------------------------------------------------------ Responder

struct Responder::State {
    std::weak_ptr<Client*> client;
    Event request;
    int generation = 0;
    bool answered = false;

    ~State() {
        // Dropped without an answer: tell the bridge, which would otherwise wait.
        if (!answered) send(false, error_payload("backend_error", "the game dropped " + request.type + " without answering"));
    }

    static Value error_payload(const std::string& code, const std::string& message) {
        Value p = Value::map();
        p.set("code", code);
        p.set("message", message);
        return p;
    }

    void send(bool ok, Value payload) {
        answered = true;
        if (auto alive = client.lock()) (*alive)->answer(request, generation, ok, std::move(payload));
    }
};

void Responder::succeed(Value payload) {
    if (state_ && !state_->answered) state_->send(true, std::move(payload));
}

void Responder::fail(const std::string& code, const std::string& message) {
    if (state_ && !state_->answered) state_->send(false, State::error_payload(code, message));
}

bool Responder::answered() const { return state_ && state_->answered; }

const Event& Responder::request() const {
    static const Event none;
    return state_ ? state_->request : none;
}

// ------------------------------------------------------------------ Client

Client::Client(Transport& transport, ClientOptions options)
    : transport_(transport), options_(std::move(options)), backoff_ms_(options_.backoff_initial_ms),
      self_(std::make_shared<Client*>(this)) {
    if (!options_.clock) options_.clock = steady_ms;
    transport_.set_listener(this);
}

Client::~Client() {
    transport_.set_listener(nullptr);
    self_.reset();
}

int64_t Client::now() const { return options_.clock(); }

std::string Client::next_id() { return "c" + std::to_string(next_id_++); }

void Client::connect() {
    user_closed_ = false;
    state_ = State::Connecting;
    transport_.connect(options_.url, options_.headers);
}

void Client::close() {
    user_closed_ = true;
    const bool was_open = state_ == State::Handshaking || state_ == State::Ready;
    state_ = State::Closed;
    if (was_open) transport_.close(1000, "bye");
    fail_all("closed", "the client closed the connection", false);
}

bool Client::transmit(const Event& event) {
    const std::vector<uint8_t> frame = encode_frame(event, options_.framing);
    return transport_.send(frame.data(), frame.size(), options_.framing == Framing::MsgPack);
}

void Client::on_open() {
    ++connections_;
    link_up_ = true;
    state_ = State::Handshaking;
    send_hello();
}

void Client::send_hello() {
    Value payload = Value::map();
    payload.set("protocol", kProtocolVersion);
    payload.set("client", options_.client_name);
    payload.set("visemes", options_.visemes);
    payload.set("text_deltas", options_.text_deltas);
    if (!options_.token.empty()) payload.set("token", options_.token);
    if (options_.audio_out.is_map()) payload.set("audio_out", options_.audio_out);
    if (options_.audio_in.is_map()) payload.set("audio_in", options_.audio_in);
    if (!options_.scope.empty()) payload.set("scope", options_.scope);
    Event hello;
    hello.type = "session.hello";
    hello.id = next_id();
    hello.payload = std::move(payload);
    hello_id_ = hello.id;
    Waiting w;
    w.type = hello.type;
    w.handler = [this](const Reply& reply) { on_hello(reply); };
    const int64_t timeout = options_.request_timeout_ms;
    w.deadline = timeout > 0 ? now() + timeout : 0;
    waiting_[hello.id] = std::move(w);
    transmit(hello);
}

void Client::on_hello(const Reply& reply) {
    if (reply.code == "connection_lost" || reply.code == "closed") return;  // on_closed handles it
    if (reply.code == "timeout") {
        transport_.close(1000, "no hello reply");  // on_closed then reconnects
        return;
    }
    if (!reply.ok) {
        // unsupported_version / unauthorized are permanent: do not retry.
        const bool permanent = reply.code == "unsupported_version" || reply.code == "unauthorized" || reply.code == "bad_event";
        if (on_error) on_error(reply.code, "session.hello refused: " + reply.message);
        if (permanent) {
            user_closed_ = true;
            state_ = State::Closed;
            transport_.close(1000, "hello refused");
            fail_all(reply.code, reply.message, false);
        }
        return;
    }
    hello_ = reply.event.payload;
    state_ = State::Ready;
    backoff_ms_ = options_.backoff_initial_ms;
    // Entities of an earlier connection first, then what the game queued meanwhile.
    for (const auto& entry : entities_) {
        Event init;
        init.type = "entity.init";
        init.id = next_id();
        init.entity = entry.first;
        init.payload = Value::map();
        init.payload.set("character", entry.second);
        const std::string name = entry.first;
        Waiting w;
        w.type = init.type;
        w.entity = name;
        w.handler = [this, name](const Reply& r) {
            if (on_entity_init) on_entity_init(name, r);
        };
        w.deadline = options_.request_timeout_ms > 0 ? now() + options_.request_timeout_ms : 0;
        waiting_[init.id] = std::move(w);
        transmit(init);
    }
    std::vector<Queued> queued;
    queued.swap(queued_);
    for (Queued& q : queued) transmit(q.event);
    if (on_ready) on_ready();
}

std::string Client::submit(Event event, ReplyHandler handler, RequestOptions options, bool silent) {
    event.id = next_id();
    const std::string id = event.id;
    Waiting w;
    w.type = event.type;
    w.entity = event.entity;
    w.handler = std::move(handler);
    const int64_t timeout = options.timeout_ms < 0 ? options_.request_timeout_ms : options.timeout_ms;
    w.deadline = timeout > 0 ? now() + timeout : 0;
    w.collect = options.collect_outputs;
    w.silent = silent;
    if (state_ == State::Closed || state_ == State::Idle) {
        Reply r;
        r.event = event;
        r.code = "closed";
        r.message = "not connected";
        if (w.handler) w.handler(r);
        return id;
    }
    waiting_[id] = std::move(w);
    if (state_ == State::Ready) {
        if (!transmit(event)) finish(id, Reply{event, false, "connection_lost", "the frame could not be sent", false, {}});
    } else {
        queued_.push_back({std::move(event), id});
    }
    return id;
}

std::string Client::request(const std::string& type, const std::string& entity, Value payload, ReplyHandler on_reply,
                            RequestOptions options) {
    Event e;
    e.type = type;
    e.entity = entity;
    e.payload = std::move(payload);
    return submit(std::move(e), std::move(on_reply), options, false);
}

bool Client::send(const std::string& type, const std::string& entity, Value payload) {
    if (state_ != State::Ready) return false;
    Event e;
    e.type = type;
    e.entity = entity;
    e.payload = std::move(payload);
    e.id = next_id();
    // Remembered briefly so that a success reply (playback.progress gets one) is swallowed
    // and an error reaches on_error; stt.audio is never answered on success, so it is not kept.
    if (type != "stt.audio") {
        Waiting w;
        w.type = type;
        w.entity = entity;
        w.silent = true;
        w.deadline = now() + 10000;
        waiting_[e.id] = std::move(w);
    }
    return transmit(e);
}

std::string Client::init_entity(const std::string& name, Value character, ReplyHandler on_reply) {
    entities_[name] = character;
    Value payload = Value::map();
    payload.set("character", std::move(character));
    return request("entity.init", name, std::move(payload), [this, name, on_reply](const Reply& r) {
        if (!r.ok && r.code != "entity_exists") entities_.erase(name);
        if (on_entity_init) on_entity_init(name, r);
        if (on_reply) on_reply(r);
    });
}

std::string Client::remove_entity(const std::string& name, ReplyHandler on_reply) {
    entities_.erase(name);
    return request("entity.remove", name, Value::map(), std::move(on_reply));
}

std::string Client::say(const std::string& entity, const std::string& text, ReplyHandler on_reply, RequestOptions options) {
    Value payload = Value::map();
    payload.set("kind", "verbal");
    payload.set("text", text);
    return request("user.utterance", entity, std::move(payload), std::move(on_reply), options);
}

std::string Client::speak(const std::string& entity, const std::string& text, ReplyHandler on_reply, RequestOptions options) {
    Value payload = Value::map();
    payload.set("text", text);
    return request("tts.say", entity, std::move(payload), std::move(on_reply), options);
}

std::string Client::interrupt(const std::string& entity, int64_t played_ms, ReplyHandler on_reply) {
    Value payload = Value::map();
    if (played_ms >= 0) payload.set("played_ms", played_ms);
    return request("entity.interrupt", entity, std::move(payload), std::move(on_reply));
}

void Client::set_entity_listener(const std::string& entity, std::function<void(const Event&)> listener) {
    if (listener) listeners_[entity] = std::move(listener);
    else listeners_.erase(entity);
}

void Client::on_bridge_request(const std::string& type, BridgeRequestHandler handler) {
    if (handler) bridge_handlers_[type] = std::move(handler);
    else bridge_handlers_.erase(type);
}

size_t Client::pending() const {
    size_t n = 0;
    for (const auto& entry : waiting_) n += (!entry.second.silent && entry.first != hello_id_) ? 1 : 0;
    return n;
}

bool Client::is_pending(const std::string& id) const {
    auto it = waiting_.find(id);
    return it != waiting_.end() && it->second.pending;
}

void Client::on_message(const uint8_t* data, size_t size, bool binary) {
    Event event;
    std::string error;
    if (!decode_frame(data, size, binary, event, &error)) {
        if (on_error) on_error("bad_frame", error);
        return;
    }
    route(std::move(event));
}

void Client::finish(const std::string& id, Reply reply) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return;
    Waiting w = std::move(it->second);
    waiting_.erase(it);
    queued_.erase(std::remove_if(queued_.begin(), queued_.end(), [&](const Queued& q) { return q.id == id; }), queued_.end());
    reply.was_pending = reply.was_pending || w.pending;
    reply.outputs = std::move(w.outputs);
    if (w.silent) {
        if (!reply.ok && reply.code != "connection_lost" && reply.code != "closed" && reply.code != "timeout" && on_error)
            on_error(reply.code, w.type + " " + id + ": " + reply.message);
        return;
    }
    if (w.handler) w.handler(reply);
}

void Client::route(Event event) {
    if (event.status != "new") {
        auto it = waiting_.find(event.id);
        if (it != waiting_.end()) {
            if (event.status == "pending") {
                it->second.pending = true;
                return;
            }
            Reply r;
            r.ok = event.status == "success";
            if (!r.ok) {
                r.code = event.error_code();
                r.message = event.error_message();
            }
            const std::string id = event.id;
            r.event = std::move(event);
            finish(id, std::move(r));
            return;
        }
    }
    if (event.type == "error" && event.status == "new") {
        const std::string ref = event.payload.str_or("ref");
        if (on_error) on_error(event.error_code(), event.error_message());
        if (!ref.empty() && waiting_.count(ref)) {
            finish(ref, Reply{event, false, event.error_code(), event.error_message(), false, {}});
        }
        return;
    }
    if (event.status == "new" && is_bridge_request_type(event.type)) {
        handle_bridge_request(event);
    }
    if (!event.ref.empty()) {
        auto owner = waiting_.find(event.ref);
        if (owner != waiting_.end() && owner->second.collect) owner->second.outputs.push_back(event);
    }
    if (!event.entity.empty()) {
        auto listener = listeners_.find(event.entity);
        if (listener != listeners_.end()) {
            auto fn = listener->second;  // a copy: the listener may replace itself
            fn(event);
        }
    }
    if (on_event) on_event(event);
}

void Client::handle_bridge_request(const Event& event) {
    Responder responder;
    responder.state_ = std::make_shared<Responder::State>();
    responder.state_->client = self_;
    responder.state_->request = event;
    responder.state_->generation = connections_;
    auto it = bridge_handlers_.find(event.type);
    if (it == bridge_handlers_.end()) {
        responder.fail("backend_unavailable", "the game registered no handler for " + event.type);
        return;
    }
    auto handler = it->second;
    handler(event, responder);
}

void Client::answer(const Event& request, int generation, bool ok, Value payload) {
    if (generation != connections_ || state_ != State::Ready) return;  // that connection is gone
    Event reply;
    reply.type = request.type;
    reply.id = request.id;
    reply.entity = request.entity;
    reply.status = ok ? "success" : "error";
    reply.payload = std::move(payload);
    transmit(reply);
}

void Client::fail_all(const std::string& code, const std::string& message, bool keep_queued) {
    std::vector<std::string> ids;
    for (const auto& entry : waiting_) {
        const bool is_queued = std::any_of(queued_.begin(), queued_.end(), [&](const Queued& q) { return q.id == entry.first; });
        if (!(keep_queued && is_queued)) ids.push_back(entry.first);
    }
    for (const std::string& id : ids) fail_local(id, code, message);
}

void Client::fail_local(const std::string& id, const std::string& code, const std::string& message) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return;
    Event e;  // what the game sent, for its handler to tell requests apart
    e.id = id;
    e.type = it->second.type;
    e.entity = it->second.entity;
    finish(id, Reply{e, false, code, message, false, {}});
}

void Client::on_closed(int code, const std::string& reason) {
    const bool was_up = link_up_;
    link_up_ = false;
    if (user_closed_) {
        state_ = State::Closed;
        if (on_disconnected && was_up) on_disconnected(code, reason);
        return;
    }
    // Requests sent on the lost connection cannot be answered any more; queued ones (not
    // sent yet) wait for the next connection, their timeouts still running.
    fail_all("connection_lost", "connection closed (code " + std::to_string(code) + ") " + reason, true);
    if (on_disconnected && was_up) on_disconnected(code, reason);
    if (options_.reconnect) schedule_reconnect();
    else {
        state_ = State::Closed;
        fail_all("closed", "connection closed and reconnect is off", false);
    }
}

void Client::schedule_reconnect() {
    state_ = State::Reconnecting;
    reconnect_at_ = now() + backoff_ms_;
    backoff_ms_ = std::min(options_.backoff_max_ms, backoff_ms_ * 2);
}

void Client::tick() {
    const int64_t t = now();
    if (state_ == State::Reconnecting && t >= reconnect_at_) {
        state_ = State::Connecting;
        transport_.connect(options_.url, options_.headers);
    }
    std::vector<std::string> expired;
    for (const auto& entry : waiting_) {
        if (entry.second.deadline != 0 && t >= entry.second.deadline) expired.push_back(entry.first);
    }
    for (const std::string& id : expired) fail_local(id, "timeout", "no final reply within the timeout");
}

}  // namespace eb
