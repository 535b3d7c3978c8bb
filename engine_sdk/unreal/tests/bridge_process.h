// Starts a real `entity-bridge serve` for the live tests (the suite's fixture) and a pump
// that drives a Client over the Beast transport until a condition holds.
//
// The bridge runs in sidecar mode (--exit-on-stdin-eof) with its stdin on a pipe we hold, so
// it exits with the test process even if a test crashes. `restart()` stops it and starts a
// new one on the same port (the reconnect test).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "beast_transport.h"
#include "entitybridge/client.h"

class BridgeProcess {
public:
    explicit BridgeProcess(const std::string& config = std::string(EB_SDK_DIR) + "/tests/bridge.toml")
        : config_(config) {}
    ~BridgeProcess() { stop(); }

    // Starts the bridge (port 0 = a free one) and waits up to 30 s for its READY url.
    bool start(int port = 0) {
        const char* bin = std::getenv("EB_BRIDGE_BIN");
        const std::string bridge = bin ? bin : std::string(EB_REPO_ROOT) + "/.venv/bin/entity-bridge";
        port_file_ = "/tmp/eb-unreal-port-" + std::to_string(getpid()) + "-" + std::to_string(++starts_);
        std::remove(port_file_.c_str());
        int fds[2];
        if (pipe(fds) != 0) return false;
        const std::string port_text = std::to_string(port);
        const char* log_env = std::getenv("EB_BRIDGE_LOG");  // run-tests.sh: build/test-logs/
        const std::string log = log_env ? log_env : "/tmp/eb-unreal-bridge-" + std::to_string(getpid()) + ".log";
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[0], 0);
            close(fds[0]);
            close(fds[1]);
            const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (out >= 0) {
                dup2(out, 1);
                dup2(out, 2);
            }
            execl(bridge.c_str(), bridge.c_str(), "serve", "--config", config_.c_str(), "--port", port_text.c_str(),
                  "--port-file", port_file_.c_str(), "--exit-on-stdin-eof", "--log-level", "warning", static_cast<char*>(nullptr));
            _exit(127);
        }
        close(fds[0]);
        stdin_ = fds[1];
        for (int i = 0; i < 300; ++i) {
            std::ifstream in(port_file_);
            std::string url;
            if (in >> url && url.rfind("ws://", 0) == 0) {
                url_ = url;
                port_ = std::atoi(url.substr(url.rfind(':') + 1).c_str());
                return true;
            }
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return false;
    }

    void stop() {
        if (pid_ <= 0) return;
        std::remove(port_file_.c_str());
        close(stdin_);  // sidecar mode: the bridge shuts down
        for (int i = 0; i < 100; ++i) {
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    bool restart() {
        const int port = port_;
        stop();
        for (int attempt = 0; attempt < 20; ++attempt) {
            if (start(port)) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        return false;
    }

    const std::string& url() const { return url_; }
    int port() const { return port_; }

private:
    std::string config_;
    std::string port_file_;
    std::string url_;
    int port_ = 0;
    int starts_ = 0;
    pid_t pid_ = -1;
    int stdin_ = -1;
};

// One bridge for the whole test run (started on first use), like a ctest fixture.
inline BridgeProcess& shared_bridge() {
    static BridgeProcess bridge;
    static bool started = bridge.start();
    (void)started;
    return bridge;
}

// Runs the transport's callbacks and the client's timers until `done` or `timeout_ms`.
inline bool pump(eb::BeastTransport& transport, eb::Client& client, const std::function<bool()>& done,
                 int timeout_ms = 10000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        transport.wait(5);
        client.tick();
    }
    return true;
}
