// A console chat with one character, on the portable core and the Beast transport: the
// README's walkthrough. Usage: eb_chat ws://127.0.0.1:8765 mira "Hello!" ["And then?" ...]
#include <cstdio>
#include <string>

#include "beast_transport.h"
#include "entitybridge/client.h"

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s URL CHARACTER LINE...\n", argv[0]);
        return 2;
    }
    eb::BeastTransport transport;
    eb::ClientOptions options;
    options.url = argv[1];
    eb::Client client(transport, options);

    int line = 3;
    bool busy = false, failed = false;
    auto next = [&]() {
        if (line >= argc) return;
        std::printf("you: %s\n", argv[line]);
        busy = true;
        client.say("npc-1", argv[line++], [&](const eb::Reply& reply) {
            busy = false;
            if (reply.ok) std::printf("\n[%s]\n", reply.event.payload.str_or("reply").c_str());
            else { std::printf("\nerror %s: %s\n", reply.code.c_str(), reply.message.c_str()); failed = true; }
        });
    };
    client.on_error = [](const std::string& code, const std::string& message) {
        std::fprintf(stderr, "bridge error %s: %s\n", code.c_str(), message.c_str());
    };
    client.set_entity_listener("npc-1", [](const eb::Event& e) {
        if (e.type == "ai.text") std::printf("%s", e.payload.str_or("delta").c_str());
        if (e.type == "ai.action") std::printf(" *%s* ", e.payload.str_or("text").c_str());
        std::fflush(stdout);
    });
    client.on_ready = [&]() {
        client.init_entity("npc-1", eb::Value(argv[2]), [&](const eb::Reply& r) {
            if (!r.ok) { std::printf("cannot create the character: %s %s\n", r.code.c_str(), r.message.c_str()); failed = true; return; }
            next();
        });
    };
    client.connect();
    // The host loop: deliver socket callbacks and run timers on this thread.
    while (!failed && (busy || line < argc) && client.state() != eb::Client::State::Closed) {
        transport.wait(10);
        client.tick();
        if (!busy && client.ready() && line < argc && line > 3) next();
    }
    client.close();
    transport.wait(100);
    return failed ? 1 : 0;
}
