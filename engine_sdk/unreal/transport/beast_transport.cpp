// BeastTransport: see beast_transport.h. The only translation unit that includes Beast.
#include "beast_transport.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace eb {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct Incoming {
    enum class Kind { Open, Message, Closed } kind;
    bool binary = false;
    std::vector<uint8_t> data;
    int code = 0;
    std::string reason;
    uint64_t generation = 0;
};

struct Outgoing {
    std::shared_ptr<std::vector<uint8_t>> data;
    bool binary;
};

bool parse_ws_url(const std::string& url, std::string& host, std::string& port, std::string& target) {
    const std::string scheme = "ws://";
    if (url.compare(0, scheme.size(), scheme) != 0) return false;
    const std::string rest = url.substr(scheme.size());
    const size_t slash = rest.find('/');
    const std::string authority = rest.substr(0, slash);
    target = slash == std::string::npos ? "/" : rest.substr(slash);
    const size_t colon = authority.rfind(':');
    if (colon == std::string::npos) {
        host = authority;
        port = "80";
    } else {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    return !host.empty() && !port.empty();
}

// One connection attempt: its own io_context and thread, so a reconnect starts clean.
class Connection {
public:
    using Sink = std::function<void(Incoming)>;

    explicit Connection(Sink sink) : ws_(ioc_), resolver_(ioc_), sink_(std::move(sink)) {}

    void start(const std::string& url, const Transport::Headers& headers) {
        std::string port;
        if (!parse_ws_url(url, host_, port, target_)) {
            sink_({Incoming::Kind::Closed, false, {}, 1006, "bad url: " + url});
            return;
        }
        headers_ = headers;
        ws_.read_message_max(64u << 20);
        auto* self = this;
        resolver_.async_resolve(host_, port, [self](beast::error_code ec, tcp::resolver::results_type results) {
            if (ec) return self->fail(ec);
            beast::get_lowest_layer(self->ws_).async_connect(results, [self](beast::error_code ec2, tcp::endpoint) {
                if (ec2) return self->fail(ec2);
                self->handshake();
            });
        });
        thread_ = std::thread([self] { self->ioc_.run(); });
    }

    void send(std::shared_ptr<std::vector<uint8_t>> data, bool binary) {
        auto* self = this;
        net::post(ioc_, [self, data, binary] {
            if (!self->open_) return;
            self->queue_.push_back({data, binary});
            if (self->queue_.size() == 1) self->write_next();
        });
    }

    void close(int code, const std::string& reason) {
        auto* self = this;
        net::post(ioc_, [self, code, reason] {
            if (!self->open_ || self->closing_) return;
            self->closing_ = true;
            self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
            // Beast allows one write or close in flight: close after the queued writes.
            if (self->queue_.empty()) self->start_close();
        });
    }

    void start_close() {
        ws_.async_close(close_reason_, [](beast::error_code) {
            // The read loop sees the close completing and reports it.
        });
    }

    void abort() {
        auto* self = this;
        net::post(ioc_, [self] {
            beast::error_code ignored;
            beast::get_lowest_layer(self->ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
            beast::get_lowest_layer(self->ws_).close();
        });
    }

    // Stops the socket thread; pending handlers (they hold a raw `this`) are destroyed with
    // the io_context, never run, so the Connection can be destroyed right after.
    void join() {
        if (thread_.joinable()) {
            ioc_.stop();
            thread_.join();
        }
    }

    bool is_open() const { return open_; }

private:
    void handshake() {
        auto* self = this;
        ws_.set_option(websocket::stream_base::decorator([self](websocket::request_type& req) {
            req.set(beast::http::field::user_agent, "entity-bridge-cpp");
            for (const auto& h : self->headers_) req.set(h.first, h.second);
        }));
        ws_.async_handshake(host_, target_, [self](beast::error_code ec) {
            if (ec) return self->fail(ec);
            self->open_ = true;
            self->sink_({Incoming::Kind::Open, false, {}, 0, ""});
            self->read();
        });
    }

    void read() {
        auto* self = this;
        ws_.async_read(buffer_, [self](beast::error_code ec, std::size_t) {
            if (ec) return self->fail(ec);
            Incoming msg{Incoming::Kind::Message, self->ws_.got_binary(), {}, 0, ""};
            const auto data = self->buffer_.data();
            const auto* p = static_cast<const uint8_t*>(data.data());
            msg.data.assign(p, p + data.size());
            self->buffer_.consume(self->buffer_.size());
            self->sink_(std::move(msg));
            self->read();
        });
    }

    void write_next() {
        auto* self = this;
        Outgoing& next = queue_.front();
        ws_.binary(next.binary);
        ws_.async_write(net::buffer(*next.data), [self](beast::error_code ec, std::size_t) {
            if (ec) return self->fail(ec);
            self->queue_.pop_front();
            if (!self->queue_.empty()) self->write_next();
            else if (self->closing_) self->start_close();
        });
    }

    void fail(beast::error_code ec) {
        if (reported_) return;
        reported_ = true;
        open_ = false;
        queue_.clear();
        int code = 1006;
        std::string reason = ec.message();
        if (ec == websocket::error::closed) {
            const auto& cr = ws_.reason();
            code = cr.code == websocket::close_code::none ? 1005 : static_cast<int>(cr.code);
            reason = std::string(cr.reason.c_str());
        }
        beast::error_code ignored;
        beast::get_lowest_layer(ws_).socket().close(ignored);
        sink_({Incoming::Kind::Closed, false, {}, code, reason});
    }

    net::io_context ioc_;
    websocket::stream<beast::tcp_stream> ws_;
    tcp::resolver resolver_;
    beast::flat_buffer buffer_;
    std::deque<Outgoing> queue_;
    std::string host_, target_;
    Transport::Headers headers_;
    Sink sink_;
    std::thread thread_;
    std::atomic<bool> open_{false};
    bool closing_ = false;
    websocket::close_reason close_reason_;
    bool reported_ = false;
};

}  // namespace

struct BeastTransport::Impl {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Incoming> inbox;
    uint64_t generation = 0;
    std::unique_ptr<Connection> connection;

    void push(Incoming in) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            inbox.push_back(std::move(in));
        }
        cv.notify_all();
    }
};

BeastTransport::BeastTransport() : impl_(new Impl) {}

BeastTransport::~BeastTransport() {
    if (impl_->connection) impl_->connection->join();
    impl_->connection.reset();
}

void BeastTransport::connect(const std::string& url, const Headers& headers) {
    if (impl_->connection) {
        impl_->connection->join();
        impl_->connection.reset();
    }
    Impl* impl = impl_.get();
    // Events of an earlier connection still in the inbox are dropped by poll().
    const uint64_t generation = ++impl_->generation;
    impl_->connection.reset(new Connection([impl, generation](Incoming in) {
        in.generation = generation;
        impl->push(std::move(in));
    }));
    impl_->connection->start(url, headers);
}

bool BeastTransport::send(const uint8_t* data, size_t size, bool binary) {
    if (!impl_->connection || !impl_->connection->is_open()) return false;
    impl_->connection->send(std::make_shared<std::vector<uint8_t>>(data, data + size), binary);
    return true;
}

void BeastTransport::close(int code, const std::string& reason) {
    if (impl_->connection) impl_->connection->close(code, reason);
}

void BeastTransport::abort() {
    if (impl_->connection) impl_->connection->abort();
}

size_t BeastTransport::poll() {
    std::deque<Incoming> batch;
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        batch.swap(impl_->inbox);
    }
    for (Incoming& in : batch) {
        if (listener_ == nullptr || in.generation != impl_->generation) continue;
        switch (in.kind) {
            case Incoming::Kind::Open: listener_->on_open(); break;
            case Incoming::Kind::Message: listener_->on_message(in.data.data(), in.data.size(), in.binary); break;
            case Incoming::Kind::Closed: listener_->on_closed(in.code, in.reason); break;
        }
    }
    return batch.size();
}

size_t BeastTransport::wait(int timeout_ms) {
    {
        std::unique_lock<std::mutex> lock(impl_->mutex);
        impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return !impl_->inbox.empty(); });
    }
    return poll();
}

}  // namespace eb
