// Live tests: the real Client over the Beast transport against a real `entity-bridge serve`
// (started by bridge_process.h with tests/bridge.toml).
#include <doctest/doctest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "live_session.h"
#include "entitybridge/client.h"
#include "entitybridge/json.h"
#include "entitybridge/msgpack.h"

using eb::Client;
using eb::Event;
using eb::Reply;
using eb::Value;

namespace {

using Session = LiveSession;

eb::ClientOptions options_for(eb::Framing framing = eb::Framing::MsgPack) {
    BridgeProcess& bridge = shared_bridge();
    REQUIRE_MESSAGE(!bridge.url().empty(), "the bridge did not start (see /tmp/eb-unreal-bridge-*.log)");
    eb::ClientOptions o = LiveSession::options(bridge.url());
    o.framing = framing;
    return o;
}

}  // namespace

TEST_CASE("live: hello in both framings") {
    for (eb::Framing framing : {eb::Framing::MsgPack, eb::Framing::Json}) {
        CAPTURE(static_cast<int>(framing));
        eb::ClientOptions o = options_for(framing);
        o.audio_out = Value::map();
        o.audio_out.set("sample_rate", 16000);
        Session s(o);
        REQUIRE(s.connect());
        const Value& hello = s.client->hello();
        CHECK(hello.get("protocol").as_int() == 1);
        CHECK(hello.get("audio_out").get("sample_rate").as_int() == 16000);
        bool has_echo = false;
        for (const Value& c : hello.get("characters").items()) has_echo = has_echo || c.as_str() == "echo";
        CHECK(has_echo);
        // A whole turn in this framing too.
        REQUIRE(s.init("npc", "parrot").ok);
        Reply r = s.call([](Client& c, eb::ReplyHandler h) { return c.say("npc", "ünïcode works", h); });
        CHECK(r.ok);
        CHECK(r.event.payload.str_or("reply") == "You said: ünïcode works");
        CHECK(s.errors.empty());
    }
}

TEST_CASE("live: a full turn streams its events in order, then one final reply") {
    Session s(options_for());
    REQUIRE(s.connect());
    REQUIRE(s.init("npc-1", "echo").ok);
    std::vector<std::string> sequence;
    std::vector<Event> entity_events;
    s.client->set_entity_listener("npc-1", [&](const Event& e) {
        entity_events.push_back(e);
        sequence.push_back(e.type);
    });
    eb::RequestOptions collect;
    collect.collect_outputs = true;
    int finals = 0;
    Reply reply;
    const std::string id = s.client->say("npc-1", "Hi!", [&](const Reply& r) {
        reply = r;
        ++finals;
        sequence.push_back("final");
    }, collect);
    CHECK(s.client->pending() == 1);
    CHECK_FALSE(s.client->is_pending(id));  // the bridge has not said `pending` yet
    REQUIRE(s.run([&] { return finals == 1; }));
    s.run([] { return false; }, 300);  // nothing may follow the final reply
    CHECK(finals == 1);
    CHECK(reply.ok);
    CHECK(reply.was_pending);
    CHECK(reply.event.id == id);
    CHECK(reply.event.payload.str_or("reply") == "*waves* Hello there, traveller.");
    REQUIRE(!sequence.empty());
    CHECK(sequence.back() == "final");
    std::string text;
    bool action = false;
    for (const Event& e : reply.outputs) {
        CHECK(e.ref == id);
        if (e.type == "ai.text") text += e.payload.str_or("delta");
        if (e.type == "ai.action") action = action || e.payload.str_or("text") == "waves";
    }
    // The deltas carry the spoken text; the action comes as its own ai.action event.
    CHECK(text == reply.event.payload.str_or("spoken"));
    CHECK(text == "Hello there, traveller.");
    CHECK(action);
    CHECK(entity_events.size() == reply.outputs.size());
    CHECK(s.client->pending() == 0);
}

TEST_CASE("live: errors come back with the protocol's codes") {
    Session s(options_for());
    REQUIRE(s.connect());
    Reply unknown = s.init("x", "nobody");
    CHECK_FALSE(unknown.ok);
    CHECK(unknown.code == "unknown_character");
    CHECK(unknown.message.find("echo") != std::string::npos);  // lists the configured ones

    Reply no_entity = s.call([](Client& c, eb::ReplyHandler h) { return c.say("ghost", "hello", h); });
    CHECK(no_entity.code == "unknown_entity");

    REQUIRE(s.init("a", "echo").ok);
    Reply twice = s.init("a", "echo");
    CHECK(twice.code == "entity_exists");

    REQUIRE(s.init("b", "broken").ok);
    Reply broken = s.call([](Client& c, eb::ReplyHandler h) { return c.say("b", "hello", h); });
    CHECK(broken.code == "backend_error");
    CHECK(broken.message.find("scripted failure") != std::string::npos);

    Reply unknown_type = s.call([](Client& c, eb::ReplyHandler h) { return c.request("no.such.type", "a", Value::map(), h); });
    CHECK(unknown_type.code == "unknown_type");

    // A frame that is not MessagePack: the bridge answers with an `error` event.
    s.errors.clear();
    const uint8_t garbage[] = {0xc1, 0x00};
    REQUIRE(s.transport.send(garbage, sizeof garbage, true));
    REQUIRE(s.run([&] { return !s.errors.empty(); }));
    CHECK_MESSAGE(s.errors.front().rfind("bad_frame", 0) == 0, s.errors.front());
    CHECK(s.client->ready());  // the connection stays open
}

TEST_CASE("live: a request without a reply in time fails with timeout; the late reply is ignored") {
    Session s(options_for());
    REQUIRE(s.connect());
    REQUIRE(s.init("slow", "slow").ok);
    eb::RequestOptions quick;
    quick.timeout_ms = 300;
    int calls = 0;
    Reply r;
    s.client->say("slow", "hello?", [&](const Reply& reply) {
        r = reply;
        ++calls;
    }, quick);
    REQUIRE(s.run([&] { return calls == 1; }, 5000));
    CHECK(r.code == "timeout");
    CHECK(s.client->pending() == 0);
    s.run([] { return false; }, 3500);  // the bridge's reply arrives after ~3 s
    CHECK(calls == 1);
}

TEST_CASE("live: many entities at once, each gets its own replies and events") {
    Session s(options_for());
    REQUIRE(s.connect());
    const int n = 24;
    int inits = 0;
    for (int i = 0; i < n; ++i) {
        s.client->init_entity("npc-" + std::to_string(i), "parrot", [&](const Reply& r) { inits += r.ok ? 1 : 0; });
    }
    REQUIRE(s.run([&] { return inits == n; }));
    std::map<std::string, std::string> replies;
    std::map<std::string, std::string> streamed;
    bool crossed = false;
    for (int i = 0; i < n; ++i) {
        const std::string name = "npc-" + std::to_string(i);
        s.client->set_entity_listener(name, [&, name](const Event& e) {
            crossed = crossed || e.entity != name;
            if (e.type == "ai.text") streamed[name] += e.payload.str_or("delta");
        });
        s.client->say(name, "number " + std::to_string(i), [&, name](const Reply& r) {
            replies[name] = r.ok ? r.event.payload.str_or("reply") : "error " + r.code;
        });
    }
    REQUIRE(s.run([&] { return static_cast<int>(replies.size()) == n; }, 20000));
    for (int i = 0; i < n; ++i) {
        const std::string name = "npc-" + std::to_string(i);
        CHECK(replies[name] == "You said: number " + std::to_string(i));
        CHECK(streamed[name] == replies[name]);
    }
    CHECK_FALSE(crossed);
}

TEST_CASE("live: closing cleanly ends waiting requests with `closed`") {
    Session s(options_for());
    REQUIRE(s.connect());
    REQUIRE(s.init("slow", "slow").ok);
    Reply r;
    bool done = false;
    int disconnected = 0;
    s.client->on_disconnected = [&](int, const std::string&) { ++disconnected; };
    s.client->say("slow", "hello?", [&](const Reply& reply) {
        r = reply;
        done = true;
    });
    s.run([] { return false; }, 100);
    s.client->close();
    CHECK(done);
    CHECK(r.code == "closed");
    REQUIRE(s.run([&] { return disconnected == 1; }, 3000));
    CHECK(s.client->state() == Client::State::Closed);
    s.run([] { return false; }, 500);
    CHECK(s.client->state() == Client::State::Closed);  // no reconnect after a clean close
}
