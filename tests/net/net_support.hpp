#pragma once
// A WebSocketServer on loopback in a thread of its own, with a deadline: the tests' clients run on the test
// thread, questions to the server go through post(). Stopped (and joined) when the fixture goes, also
// when a test fails.
#include <chrono>
#include <future>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>

using namespace std::chrono_literals;

/// Polls `f` until it is true or `timeout` passed (what another thread does shows up a little later).
template <class F>
bool eventually(F&& f, std::chrono::milliseconds timeout = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!f()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// Runs the clients' loops in turn until `done()` holds or `timeout` passed; whether it holds.
template <class F>
bool run_clients(std::initializer_list<krmx::net::WebSocketClient*> clients, F&& done,
                 std::chrono::milliseconds timeout = 10000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < until) {
        for (auto* client : clients) client->run_for(2ms);
    }
    return done();
}

class ServerThread {
  public:
    explicit ServerThread(krmx::net::WebSocketServerOptions options = {}) : server_(std::move(options)) {}
    ServerThread(const ServerThread&) = delete;
    ServerThread& operator=(const ServerThread&) = delete;
    ~ServerThread() { stop(); }

    /// Set up streams etc. before start(); everything after start() goes through on_server().
    krmx::net::WebSocketServer& server() { return server_; }
    void start() {
        thread_ = std::thread([this] { server_.run(); });
    }
    /// Runs `f` on the server's thread and returns its result (throws after 10 s).
    template <class F>
    auto on_server(F&& f) -> std::invoke_result_t<F> {
        using R = std::invoke_result_t<F>;
        auto promise = std::make_shared<std::promise<R>>();
        auto future = promise->get_future();
        server_.post([promise, f = std::forward<F>(f)]() mutable {
            try {
                if constexpr (std::is_void_v<R>) {
                    f();
                    promise->set_value();
                } else {
                    promise->set_value(f());
                }
            } catch (...) {
                promise->set_exception(std::current_exception());
            }
        });
        if (future.wait_for(10s) != std::future_status::ready)
            throw std::runtime_error("server did not answer");
        return future.get();
    }
    /// Graceful stop; waits for run() to return (10 s at most, then the process is in trouble anyway).
    void stop() {
        if (!thread_.joinable()) return;
        server_.stop();
        thread_.join();
    }
    [[nodiscard]] std::uint16_t port() const { return server_.port(); }

    /// Declare it after what the server's callbacks touch (streams, subscriptions, captured locals): the
    /// server stops before they go, also when a REQUIRE throws.
    struct StopGuard {
        explicit StopGuard(ServerThread* server) : t(server) {}
        StopGuard(const StopGuard&) = delete;
        StopGuard& operator=(const StopGuard&) = delete;
        ~StopGuard() { t->stop(); }
        ServerThread* t;
    };
    [[nodiscard]] StopGuard stop_guard() { return StopGuard{this}; }

  private:
    krmx::net::WebSocketServer server_;
    std::thread thread_;
};
