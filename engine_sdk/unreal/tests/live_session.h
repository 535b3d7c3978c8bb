// A Client on the Beast transport for the live tests, with helpers that pump the transport
// until a reply or a condition arrives (bounded by a timeout, so no test can hang).
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bridge_process.h"
#include "entitybridge/client.h"

struct LiveSession {
    eb::BeastTransport transport;
    std::unique_ptr<eb::Client> client;
    std::vector<std::string> errors;  // everything on_error reported

    explicit LiveSession(eb::ClientOptions options) {
        client.reset(new eb::Client(transport, std::move(options)));
        client->on_error = [this](const std::string& code, const std::string& message) { errors.push_back(code + ": " + message); };
    }

    LiveSession(const std::string& url, eb::Value audio_out, int64_t backoff_ms = 250)
        : LiveSession(options(url, std::move(audio_out), backoff_ms)) {}

    static eb::ClientOptions options(const std::string& url, eb::Value audio_out = eb::Value(), int64_t backoff_ms = 250) {
        eb::ClientOptions o;
        o.url = url;
        o.audio_out = std::move(audio_out);
        o.backoff_initial_ms = backoff_ms;
        o.backoff_max_ms = 1000;
        return o;
    }

    bool run(const std::function<bool()>& done, int timeout_ms = 15000) { return pump(transport, *client, done, timeout_ms); }

    bool connect() {
        client->connect();
        return run([this] { return client->ready(); });
    }

    // Sends a request with `send(handler)` and pumps until its final reply.
    eb::Reply wait_reply(const std::function<std::string(eb::ReplyHandler)>& send, int timeout_ms = 20000) {
        eb::Reply out;
        bool done = false;
        send([&](const eb::Reply& r) {
            out = r;
            done = true;
        });
        REQUIRE_MESSAGE(run([&] { return done; }, timeout_ms), "no final reply");
        return out;
    }

    eb::Reply call(const std::function<std::string(eb::Client&, eb::ReplyHandler)>& send, int timeout_ms = 20000) {
        return wait_reply([&](eb::ReplyHandler h) { return send(*client, h); }, timeout_ms);
    }

    eb::Reply init(const std::string& name, const std::string& character) {
        return call([&](eb::Client& c, eb::ReplyHandler h) { return c.init_entity(name, character, h); });
    }
};
