// Load generator for a Krmx server with the counter domain (examples/counter_server, or the Node reference
// tests/benchmarks/reference/net_server.mjs): N WebSocket clients on loopback, all linked, each appending
// `increment` events to one domain with at most `window` unconfirmed at a time. One thread, one io_context,
// raw Beast sockets (what a client library does on top would be measured otherwise).
//
//   krmx_net_load --port P --pid SERVER_PID --clients 100 [--seconds 2] [--window 2] [--label cpp]
//
// Prints one JSON line: confirmed events per second at the server (every confirmed event is broadcast to
// every client; client 0 counts them), p50/p99 of the time from send to the sender's own confirmation,
// and the server's resident memory per idle linked connection (VmRSS before connecting and after all
// clients linked, before any event).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <nlohmann/json.hpp>

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Settings {
    std::uint16_t port = 0;
    long pid = 0;
    int clients = 100;
    double seconds = 2.0;
    int window = 2;
    std::string label = "server";
};

// The resident memory of a process in KiB, or -1 when it cannot be read.
long rss_kib(long pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

struct Run;

struct Client : std::enable_shared_from_this<Client> {
    Client(Run& run, boost::asio::io_context& context, int index)
        : run(&run), ws(context), name("load" + std::to_string(index)), index(index) {
        own_marker = R"("dispatcher":")" + name + "\"";
    }
    void start(const tcp::endpoint& endpoint);
    void read();
    void on_frame(std::string_view text);
    void send_append();
    void write_next();

    Run* run;
    websocket::stream<beast::tcp_stream> ws;
    std::string name;
    std::string own_marker;
    int index;
    beast::flat_buffer buffer;
    std::deque<std::shared_ptr<const std::string>> out;
    bool writing = false;
    bool linked = false;
    std::deque<SteadyClock::time_point> in_flight;
};

struct Run {
    Settings settings;
    boost::asio::io_context context{1};
    std::vector<std::shared_ptr<Client>> clients;
    int linked = 0;
    int failed = 0;
    bool loading = false;
    bool measuring = false;
    std::uint64_t confirmed_seen = 0;  // by client 0, during the measurement
    std::vector<double> latencies_us;
    std::string append_text(const std::string& name) const {
        return R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":")" + name +
               R"(","event":{"type":"increment","payload":1}}})";
    }
};

void Client::start(const tcp::endpoint& endpoint) {
    beast::get_lowest_layer(ws).async_connect(endpoint, [self = shared_from_this()](beast::error_code ec) {
        if (ec) {
            ++self->run->failed;
            return;
        }
        self->ws.async_handshake("127.0.0.1", "/", [self](beast::error_code e) {
            if (e) {
                ++self->run->failed;
                return;
            }
            self->read();
            self->out.push_back(std::make_shared<const std::string>(
                R"({"type":"krmx/link","payload":{"username":")" + self->name + R"(","version":"0.5.4"}})"));
            self->write_next();
        });
    });
}

void Client::read() {
    ws.async_read(buffer, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) {
            if (self->run->loading) ++self->run->failed;
            return;
        }
        const auto data = self->buffer.cdata();
        self->on_frame(std::string_view{static_cast<const char*>(data.data()), data.size()});
        self->buffer.consume(self->buffer.size());
        self->read();
    });
}

void Client::on_frame(std::string_view text) {
    if (!linked) {
        if (text.find(R"("type":"krmx/linked")") != std::string_view::npos &&
            text.find("\"" + name + "\"") != std::string_view::npos) {
            linked = true;
            ++run->linked;
        }
        return;
    }
    if (text.find(R"("type":"stream/append")") == std::string_view::npos) return;
    if (index == 0 && run->measuring) ++run->confirmed_seen;
    if (text.find(own_marker) == std::string_view::npos || in_flight.empty()) return;
    const auto sent = in_flight.front();
    in_flight.pop_front();
    if (run->measuring) {
        run->latencies_us.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - sent).count());
    }
    if (run->loading) send_append();
}

void Client::send_append() {
    in_flight.push_back(SteadyClock::now());
    out.push_back(std::make_shared<const std::string>(run->append_text(name)));
    if (!writing) write_next();
}

void Client::write_next() {
    if (out.empty()) {
        writing = false;
        return;
    }
    writing = true;
    ws.async_write(boost::asio::buffer(*out.front()),
                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) {
                           ++self->run->failed;
                           return;
                       }
                       self->out.pop_front();
                       self->write_next();
                   });
}

// Runs the context until `done()` or the deadline; false on the deadline.
template <class F>
bool run_until(boost::asio::io_context& context, F done, SteadyClock::duration timeout) {
    const auto until = SteadyClock::now() + timeout;
    while (!done()) {
        if (SteadyClock::now() >= until) return false;
        context.run_for(std::chrono::milliseconds{5});
        if (context.stopped()) context.restart();
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    Run run;
    auto& s = run.settings;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        const std::string value = argv[i + 1];
        if (arg == "--port")
            s.port = static_cast<std::uint16_t>(std::stoi(value));
        else if (arg == "--pid")
            s.pid = std::stol(value);
        else if (arg == "--clients")
            s.clients = std::stoi(value);
        else if (arg == "--seconds")
            s.seconds = std::stod(value);
        else if (arg == "--window")
            s.window = std::stoi(value);
        else if (arg == "--label")
            s.label = value;
        else {
            std::cerr << "unknown argument " << arg << "\n";
            return 2;
        }
    }
    if (s.port == 0) {
        std::cerr << "usage: krmx_net_load --port P [--pid PID] [--clients N] [--seconds S] [--window W]\n";
        return 2;
    }
    const long rss_before = s.pid ? rss_kib(s.pid) : -1;
    const tcp::endpoint endpoint{boost::asio::ip::make_address("127.0.0.1"), s.port};
    for (int i = 0; i < s.clients; ++i) {
        run.clients.push_back(std::make_shared<Client>(run, run.context, i));
        run.clients.back()->start(endpoint);
    }
    if (!run_until(
            run.context, [&] { return run.linked == s.clients || run.failed > 0; },
            std::chrono::seconds{60}) ||
        run.failed > 0) {
        std::cerr << "only " << run.linked << " of " << s.clients << " clients linked (" << run.failed
                  << " failed)\n";
        return 1;
    }
    // Let the joined/linked broadcasts settle, then measure memory of idle linked connections.
    (void)run_until(
        run.context, [] { return false; }, std::chrono::milliseconds{300});
    const long rss_idle = s.pid ? rss_kib(s.pid) : -1;

    run.loading = true;
    for (auto& c : run.clients) {
        for (int w = 0; w < s.window; ++w) c->send_append();
    }
    const auto warmup = std::chrono::duration<double>(std::min(0.5, s.seconds / 4));
    (void)run_until(
        run.context, [] { return false; }, std::chrono::duration_cast<SteadyClock::duration>(warmup));
    run.measuring = true;
    const auto start = SteadyClock::now();
    (void)run_until(
        run.context, [] { return false; },
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s.seconds)));
    const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    run.measuring = false;
    run.loading = false;
    const long rss_loaded = s.pid ? rss_kib(s.pid) : -1;
    for (auto& c : run.clients) {
        beast::error_code ignored;
        beast::get_lowest_layer(c->ws).socket().close(ignored);
    }
    (void)run_until(
        run.context, [] { return false; }, std::chrono::milliseconds{50});

    auto& l = run.latencies_us;
    std::sort(l.begin(), l.end());
    const auto percentile = [&l](double p) {
        if (l.empty()) return 0.0;
        return l[std::min(l.size() - 1, static_cast<std::size_t>(p * static_cast<double>(l.size())))] /
               1000.0;
    };
    nlohmann::json out{{"label", s.label},
                       {"clients", s.clients},
                       {"window", s.window},
                       {"seconds", elapsed},
                       {"events_per_s", static_cast<double>(run.confirmed_seen) / elapsed},
                       {"own_confirmations", l.size()},
                       {"p50_ms", percentile(0.50)},
                       {"p99_ms", percentile(0.99)},
                       {"failed", run.failed}};
    if (rss_before >= 0 && rss_idle >= 0) {
        out["rss_before_kib"] = rss_before;
        out["rss_idle_kib"] = rss_idle;
        out["rss_per_idle_connection_kib"] = static_cast<double>(rss_idle - rss_before) / s.clients;
    }
    if (rss_loaded >= 0) out["rss_loaded_kib"] = rss_loaded;
    std::cout << out.dump() << std::endl;
    return run.confirmed_seen > 0 && run.failed == 0 ? 0 : 1;
}
