// Load generator for a Krmx server with the counter domain (examples/counter_server, or the Node reference
// tests/benchmarks/reference/net_server.mjs): N WebSocket clients on loopback, all linked, each appending
// `increment` events to one domain. One thread, one io_context. Two modes:
//
//   closed loop (run_net_load.sh): at most `window` unconfirmed events per client at a time
//     krmx_net_load --port P --pid SERVER_PID --clients 100 [--seconds 2] [--window 2] [--label cpp]
//   open loop (run_hostile_load.sh): each client sends `rate` events per second on a fixed schedule,
//   whether or not earlier ones were confirmed
//     krmx_net_load --port P --pid PID --clients 100 --rate 5 [--seconds 10] [--warmup 2]
//                   [--source-base 127.0.1.1] [--link-timeout 60] [--ready-file PATH] [--no-delay 1]
//                   [--room-size K]
//
// Prints one JSON line: confirmed events per second at the server (every confirmed event is broadcast to
// every client; client 0 counts them), p50/p99 of the time from send to the sender's own confirmation,
// and the server's resident memory per idle linked connection (VmRSS before connecting, and after all
// clients linked and received every user's `krmx/joined`, before any event). Closed loop: a client that
// the server closes, or any socket error before the end, counts as failed (and makes the exit status 1).
//
// Open loop: latency runs from the *scheduled* send time, so a stalled server cannot hide its stall by
// slowing the senders down (coordinated omission); events sent in the measurement window and still not
// confirmed 2 s after it count with the time they waited (`unconfirmed`). A client that gets krmx/unlinked
// for itself, krmx/rejected, or is closed stops and counts in `unlinked` (with reasons); the others play
// on, and the exit status is 1 when any was unlinked. `rss_kib`: the server's VmRSS when the window ends.
// --source-base A: client i binds to address A+i before connecting (one address per player; all of 127/8
// is loopback on Linux). --ready-file: created when the load starts (after linking), for a script that
// starts other traffic then. --warmup: load before the measurement window (default min(0.5, seconds/4)).
// --no-delay 1: TCP_NODELAY on the players' sockets, as browsers and Node's ws set it.
// --room-size K (open loop only): rooms of K players, client i in room i / K, appending to the domain
// "room<i / K>" (the server has one domain per room: krmx_net_bench_server --room-size K admits the same
// players, the Node reference broadcasts every room to everyone). Confirmed events per second are then the
// own confirmations all clients received in the window.
//
// Open loop also reports the bytes each client received in the window (`bytes_per_client_per_s`, socket
// bytes, headers included) and how that compares with its own room's traffic, the stream/append frames of
// its own domain (`traffic_ratio`: all clients' bytes over their own rooms' frames; `max_traffic_ratio`:
// the highest one client had).
//
// The client side is raw Asio TCP with hand-written WebSocket framing, not Beast: every client receives every
// broadcast event, so one thread handles clients x events frames per second, and Beast's per-frame read path
// (microseconds each) made this generator the bottleneck instead of the server. Here a read takes whatever
// the socket holds (many frames) and a frame costs a header decode and a few string_view::find calls.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <nlohmann/json.hpp>

#include "client_frames.hpp"

using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {

using namespace krmx_bench;

struct Settings {
    std::uint16_t port = 0;
    long pid = 0;
    int clients = 100;
    double seconds = 2.0;
    int window = 2;
    std::string label = "server";
    double rate = 0;           // events per second per client; above zero: open loop
    double warmup = -1;        // negative: min(0.5, seconds / 4)
    std::string source_base;   // empty: the kernel picks the source address
    double link_timeout = 60;  // seconds for every client to link
    std::string ready_file;    // created when the load starts
    bool no_delay = false;     // TCP_NODELAY, as browsers and Node's ws set it
    int room_size = 0;         // above zero: rooms of this many clients, one domain each
    [[nodiscard]] bool open_loop() const { return rate > 0; }
};

// The resident memory of a process in KiB, or -1 when it cannot be read.
long rss_kib(long pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

constexpr std::size_t read_buffer_bytes = 64 * 1024;

struct Run;

// One event sent: when (open loop: when it was scheduled), and whether it falls in the measurement window.
struct Sent {
    SteadyClock::time_point at;
    bool measured = false;
};

struct Client : std::enable_shared_from_this<Client> {
    Client(Run& run, boost::asio::io_context& context, int index);
    void start(const tcp::endpoint& endpoint, const boost::asio::ip::address_v4* source);
    void read_handshake();
    void on_handshake_read();
    void read();
    bool parse_frames();
    void on_frame(std::string_view text, std::size_t frame_bytes);
    [[nodiscard]] bool is_own(std::string_view append) const;
    void send_append();
    void send_frame(unsigned char opcode, std::string_view payload);
    void flush();
    void fail(std::string_view why, const error_code& ec = {});
    // Open loop.
    void start_schedule(SteadyClock::time_point first, SteadyClock::duration period);
    void on_schedule();
    void send_scheduled(SteadyClock::time_point at);
    void unlinked(const std::string& reason);

    Run* run;
    tcp::socket socket;
    boost::asio::steady_timer schedule;
    SteadyClock::time_point next_send{};
    SteadyClock::duration period{};
    std::string name;
    std::string quoted_name;   // "loadN", as it appears in krmx/linked and as a dispatcher
    std::string append_frame;  // the masked frame of the one message this client appends, built once
    std::string own_domain;    // `"domain":"NAME"` of the domain it appends to, as appends carry it
    int index;
    std::vector<char> in = std::vector<char>(read_buffer_bytes);
    std::size_t in_used = 0;
    std::string out;      // frames queued while a write is in flight
    std::string writing;  // the frames of the write in flight
    bool write_in_flight = false;
    bool stopped = false;
    bool linked = false;
    int joined_seen = 0;  // krmx/joined frames received
    std::deque<Sent> in_flight;
    std::uint64_t bytes_in = 0;          // read from the socket during the measurement
    std::uint64_t own_domain_bytes = 0;  // of which stream/append frames of its own domain
};

struct Run {
    Settings settings;
    boost::asio::io_context context{1};
    std::vector<std::shared_ptr<Client>> clients;
    int linked = 0;
    int joined_complete = 0;  // clients that received a krmx/joined for every load user
    int failed = 0;
    bool loading = false;
    bool measuring = false;
    bool finished = false;             // sockets are being closed by us: errors no longer count
    std::uint64_t confirmed_seen = 0;  // by client `counter_index`, during the measurement
    int counter_index = 0;
    std::vector<double> latencies_us;
    // Open loop.
    SteadyClock::time_point measure_from{};
    SteadyClock::time_point measure_until{};
    std::uint64_t scheduled = 0;    // events scheduled in the measurement window (and sent)
    std::uint64_t invalidated = 0;  // own events the server refused (stream/invalidate)
    std::uint64_t unconfirmed = 0;  // measured events without a confirmation at the end
    std::uint64_t lost = 0;         // measured events in flight at clients that were unlinked
    int unlinked = 0;               // clients that stopped: unlinked, rejected or closed
    std::map<std::string, int> unlinked_reasons;
    std::uint64_t own_confirmed = 0;  // own confirmations any client received during the measurement
    [[nodiscard]] std::string domain_of(int index) const {
        return settings.room_size > 0 ? "room" + std::to_string(index / settings.room_size) : "counter";
    }
    [[nodiscard]] static std::string append_text(const std::string& name, const std::string& domain) {
        return R"({"type":"stream/append","payload":{"domain":")" + domain + R"(","dispatcher":")" + name +
               R"(","event":{"type":"increment","payload":1}}})";
    }
};

Client::Client(Run& r, boost::asio::io_context& context, int i)
    : run(&r), socket(context), schedule(context), name("load"), index(i) {
    name += std::to_string(i);
    quoted_name.append("\"").append(name).append("\"");
    const auto domain = run->domain_of(i);
    own_domain = R"("domain":")" + domain + "\"";
    append_masked_frame(append_frame, op_text, Run::append_text(name, domain));
}

void Client::fail(std::string_view why, const error_code& ec) {
    if (stopped) return;
    if (run->settings.open_loop() && !run->finished) {
        std::string reason{why};
        if (ec) reason += ": " + ec.message();
        return unlinked(reason);
    }
    stopped = true;
    schedule.cancel();
    error_code ignored;
    socket.close(ignored);
    if (run->finished) return;
    if (run->failed++ == 0) {  // the first cause is the interesting one; the rest usually follow from it
        std::cerr << name << ": " << why;
        if (ec) std::cerr << ": " << ec.message();
        std::cerr << "\n";
    }
}

// Open loop: the client stops playing and counts as unlinked; the others play on.
void Client::unlinked(const std::string& reason) {
    if (stopped) return;
    stopped = true;
    schedule.cancel();
    error_code ignored;
    socket.close(ignored);
    if (run->finished) return;
    for (const auto& sent : in_flight) run->lost += sent.measured ? 1 : 0;
    in_flight.clear();
    if (run->unlinked++ == 0) std::cerr << name << ": " << reason << "\n";
    // Reasons without the details that differ per client (names, ports), so that they group.
    ++run->unlinked_reasons[reason.substr(0, reason.find(':'))];
}

void Client::start(const tcp::endpoint& endpoint, const boost::asio::ip::address_v4* source) {
    if (source) {
        error_code ec;
        socket.open(tcp::v4(), ec);
        // The port is then picked at connect time, per (source, destination) pair, instead of at bind time
        // from one range shared by every destination.
        const int one = 1;
        if (!ec)
            (void)::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (!ec) socket.bind(tcp::endpoint{*source, 0}, ec);
        if (ec) return fail("bind " + source->to_string(), ec);
    }
    socket.async_connect(endpoint, [self = shared_from_this()](const error_code& ec) {
        if (ec) return self->fail("connect", ec);
        if (self->run->settings.no_delay) {
            error_code ignored;
            self->socket.set_option(tcp::no_delay(true), ignored);
        }
        // Nagle stays on, as with the Beast client this replaces, so that numbers stay comparable.
        // The key is fixed (any 16 bytes in base64 are valid), and the server's Sec-WebSocket-Accept is not
        // verified: it only proves that the server speaks WebSocket, which the first frame proves as well.
        self->writing = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(self->run->settings.port) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        self->write_in_flight = true;
        boost::asio::async_write(self->socket, boost::asio::buffer(self->writing),
                                 [self](const error_code& e, std::size_t) {
                                     self->write_in_flight = false;
                                     if (e) return self->fail("handshake write", e);
                                     self->read_handshake();
                                 });
    });
}

// Reads up to the end of the response header; the bytes after it are already frames.
void Client::read_handshake() {
    socket.async_read_some(boost::asio::buffer(in.data() + in_used, in.size() - in_used),
                           [self = shared_from_this()](const error_code& ec, std::size_t n) {
                               if (ec) return self->fail("handshake read", ec);
                               self->in_used += n;
                               self->on_handshake_read();
                           });
}

void Client::on_handshake_read() {
    const std::string_view received{in.data(), in_used};
    const auto end = received.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (in_used == in.size()) return fail("handshake response too large");
        return read_handshake();
    }
    const auto status = received.substr(0, received.find("\r\n"));
    if (status.rfind("HTTP/1.1 101", 0) != 0) return fail("handshake refused: " + std::string{status});
    const std::size_t frames_start = end + 4;
    std::memmove(in.data(), in.data() + frames_start, in_used - frames_start);
    in_used -= frames_start;
    if (!parse_frames()) return;
    send_frame(op_text, R"({"type":"krmx/link","payload":{"username":")" + name + R"(","version":"0.5.4"}})");
    read();
}

void Client::read() {
    socket.async_read_some(boost::asio::buffer(in.data() + in_used, in.size() - in_used),
                           [self = shared_from_this()](const error_code& ec, std::size_t n) {
                               if (ec) return self->fail("read", ec);
                               self->in_used += n;
                               if (self->run->measuring) self->bytes_in += n;
                               if (self->parse_frames()) self->read();
                           });
}

// Handles every complete frame in the read buffer and keeps a partial one for the next read. Server frames
// are unmasked. False when the client stopped (close frame or protocol error).
bool Client::parse_frames() {
    std::size_t at = 0;
    while (in_used - at >= 2) {
        const auto frame = read_server_frame(reinterpret_cast<const unsigned char*>(in.data() + at), in_used - at);
        if (frame.status == ServerFrame::Status::malformed) {
            fail("malformed frame header");
            return false;
        }
        if (frame.status == ServerFrame::Status::too_large) {
            fail("frame too large");
            return false;
        }
        if (frame.status == ServerFrame::Status::incomplete) {
            if (frame.total() > in.size()) in.resize(frame.total());  // after the move below the frame starts at 0
            break;
        }
        const std::size_t total = frame.total();
        const unsigned char opcode = frame.opcode;
        // Neither server fragments messages, so continuation frames are not implemented.
        if (!frame.fin || opcode == 0x0) {
            fail("fragmented message");
            return false;
        }
        const std::string_view payload{in.data() + at + frame.header, static_cast<std::size_t>(frame.length)};
        if (opcode == op_text) {
            on_frame(payload, total);
        } else if (opcode == op_ping) {
            send_frame(op_pong, payload);  // a client that misses pongs is closed by the server
        } else if (opcode == op_close) {
            fail("closed by the server (" + std::to_string(close_code(payload)) + ")");
            return false;
        } else if (opcode != op_pong) {
            fail("unexpected opcode " + std::to_string(opcode));
            return false;
        }
        at += total;
    }
    if (at > 0) {
        std::memmove(in.data(), in.data() + at, in_used - at);
        in_used -= at;
    }
    return true;
}

void Client::on_frame(std::string_view text, std::size_t frame_bytes) {
    // stream/append first: during the load nearly every frame is one.
    if (text.find(R"("type":"stream/append")") != std::string_view::npos) {
        if (!linked) return;
        if (index == run->counter_index && run->measuring) ++run->confirmed_seen;
        if (run->measuring && text.find(own_domain) != std::string_view::npos) own_domain_bytes += frame_bytes;
        if (!is_own(text) || in_flight.empty()) return;
        const auto sent = in_flight.front();
        in_flight.pop_front();
        if (run->measuring) ++run->own_confirmed;
        if (run->settings.open_loop()) {
            if (sent.measured) {
                run->latencies_us.push_back(
                    std::chrono::duration<double, std::micro>(SteadyClock::now() - sent.at).count());
            }
            return;  // the schedule sends the next one
        }
        if (run->measuring) {
            run->latencies_us.push_back(
                std::chrono::duration<double, std::micro>(SteadyClock::now() - sent.at).count());
        }
        if (run->loading) send_append();
        return;
    }
    const bool open_loop = run->settings.open_loop();
    // Both servers send each client one krmx/joined per linked user, its own included (as each user links,
    // everyone linked by then hears of it, and it hears of everyone before it), so N in all. (Open loop:
    // only the load's users count, as other clients may link on the same server.)
    if (text.find(R"("type":"krmx/joined")") != std::string_view::npos) {
        if (open_loop && text.find(R"("username":"load)") == std::string_view::npos) return;
        if (++joined_seen == run->settings.clients) ++run->joined_complete;
        return;
    }
    if (!linked && text.find(R"("type":"krmx/linked")") != std::string_view::npos &&
        text.find(quoted_name) != std::string_view::npos) {
        linked = true;
        ++run->linked;
        return;
    }
    if (!open_loop) return;
    if (text.find(R"("type":"krmx/unlinked")") != std::string_view::npos) {
        if (text.find(quoted_name) != std::string_view::npos) unlinked("unlinked by the server");
        return;
    }
    if (text.find(R"("type":"krmx/rejected")") != std::string_view::npos) {
        return unlinked("rejected: " + std::string{text});
    }
    // The only other frame for this client alone: its own event refused. It will not be confirmed.
    if (text.find(R"("type":"stream/invalidate")") != std::string_view::npos && !in_flight.empty()) {
        in_flight.pop_front();
        ++run->invalidated;
    }
}

// Whether a stream/append frame is this client's own, by its one "dispatcher":"NAME". The key is found by its
// tail: a pattern that starts with '"' costs a memcmp at every quote of the frame, one with 'd' only a few.
bool Client::is_own(std::string_view append) const {
    constexpr std::string_view key = R"(dispatcher":")";
    const auto at = append.find(key);
    return at != std::string_view::npos &&
           append.substr(at + key.size()).starts_with(std::string_view{quoted_name}.substr(1));
}

void Client::send_append() {
    in_flight.push_back(Sent{SteadyClock::now(), false});
    out += append_frame;
    if (!write_in_flight) flush();
}

// Open loop: the first event at `first`, then one every `period`, whatever the server answers.
void Client::start_schedule(SteadyClock::time_point first, SteadyClock::duration p) {
    next_send = first;
    period = p;
    schedule.expires_at(next_send);
    schedule.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->on_schedule();
    });
}

void Client::on_schedule() {
    if (stopped || !run->loading) return;
    // A late timer (the loop was busy) sends every event that is due, each stamped with its own slot.
    const auto now = SteadyClock::now();
    while (next_send <= now && next_send < run->measure_until) {
        send_scheduled(next_send);
        next_send += period;
    }
    if (next_send >= run->measure_until) return;
    schedule.expires_at(next_send);
    schedule.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->on_schedule();
    });
}

void Client::send_scheduled(SteadyClock::time_point at) {
    const bool measured = at >= run->measure_from && at < run->measure_until;
    if (measured) ++run->scheduled;
    in_flight.push_back(Sent{at, measured});
    out += append_frame;
    if (!write_in_flight) flush();
}

void Client::send_frame(unsigned char opcode, std::string_view payload) {
    append_masked_frame(out, opcode, payload);
    if (!write_in_flight) flush();
}

// One write in flight per socket; whatever is queued meanwhile goes out in the next one, as one write.
void Client::flush() {
    if (out.empty() || stopped) return;
    writing.swap(out);
    out.clear();
    write_in_flight = true;
    boost::asio::async_write(socket, boost::asio::buffer(writing),
                             [self = shared_from_this()](const error_code& ec, std::size_t) {
                                 self->write_in_flight = false;
                                 if (ec) return self->fail("write", ec);
                                 self->flush();
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

// The p-th fraction of sorted latencies in milliseconds (0 when there are none).
double percentile_ms(const std::vector<double>& sorted_us, double p) {
    if (sorted_us.empty()) return 0.0;
    return sorted_us[std::min(sorted_us.size() - 1,
                              static_cast<std::size_t>(p * static_cast<double>(sorted_us.size())))] /
           1000.0;
}

SteadyClock::duration seconds_of(double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

// Open loop (see the top of the file). Never aborts early: whoever is left plays, and the JSON says who was
// not.
int run_open_loop(Run& run) {
    const auto& s = run.settings;
    const long rss_before = s.pid ? rss_kib(s.pid) : -1;
    const auto alive = [&run] {
        return std::count_if(run.clients.begin(), run.clients.end(),
                             [](const auto& c) { return !c->stopped; });
    };
    // Every client linked or stopped, or the deadline.
    (void)run_until(
        run.context,
        [&] {
            return std::all_of(run.clients.begin(), run.clients.end(),
                               [](const auto& c) { return c->linked || c->stopped; });
        },
        seconds_of(s.link_timeout));
    for (auto& c : run.clients) {
        if (!c->linked && !c->stopped) c->unlinked("not linked in time");
    }
    // As in the closed loop: idle once every client has heard of every load user (bounded: a client that
    // stopped means the others never hear of everyone).
    (void)run_until(
        run.context,
        [&] {
            return std::all_of(run.clients.begin(), run.clients.end(),
                               [&](const auto& c) { return c->stopped || c->joined_seen >= s.clients; });
        },
        std::chrono::seconds{10});
    (void)run_until(
        run.context, [] { return false; }, std::chrono::milliseconds{300});
    const long rss_idle = s.pid ? rss_kib(s.pid) : -1;

    for (const auto& c : run.clients) {
        if (!c->stopped) {
            run.counter_index = c->index;
            break;
        }
    }
    const auto period = seconds_of(1.0 / s.rate);
    const auto t0 = SteadyClock::now() + std::chrono::milliseconds{20};
    const double warmup = s.warmup >= 0 ? s.warmup : std::min(0.5, s.seconds / 4);
    run.measure_from = t0 + seconds_of(warmup);
    run.measure_until = run.measure_from + seconds_of(s.seconds);
    run.loading = true;
    // Spread over the period so that the clients do not send in lockstep.
    for (auto& c : run.clients) {
        if (!c->stopped) c->start_schedule(t0 + period * c->index / s.clients, period);
    }
    if (!s.ready_file.empty()) std::ofstream{s.ready_file} << "loading\n";
    (void)run_until(
        run.context, [&] { return SteadyClock::now() >= run.measure_from; }, seconds_of(warmup + 1));
    run.measuring = true;
    const auto start = SteadyClock::now();
    (void)run_until(
        run.context, [&] { return SteadyClock::now() >= run.measure_until; }, seconds_of(s.seconds + 1));
    const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    run.measuring = false;
    run.loading = false;
    const long rss_end = s.pid ? rss_kib(s.pid) : -1;
    // Events of the window still unconfirmed get 2 s more, then count with what they waited.
    const auto waiting = [&run] {
        return std::any_of(run.clients.begin(), run.clients.end(), [](const auto& c) {
            return !c->stopped && std::any_of(c->in_flight.begin(), c->in_flight.end(),
                                              [](const Sent& e) { return e.measured; });
        });
    };
    (void)run_until(
        run.context, [&] { return !waiting(); }, std::chrono::seconds{2});
    const auto now = SteadyClock::now();
    for (auto& c : run.clients) {
        if (c->stopped) continue;
        for (const auto& e : c->in_flight) {
            if (!e.measured) continue;
            ++run.unconfirmed;
            run.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - e.at).count());
        }
    }
    const auto still_alive = alive();
    run.finished = true;
    for (auto& c : run.clients) {
        c->schedule.cancel();
        error_code ignored;
        c->socket.close(ignored);
    }
    (void)run_until(
        run.context, [] { return false; }, std::chrono::milliseconds{50});

    auto& l = run.latencies_us;
    std::sort(l.begin(), l.end());
    std::uint64_t bytes_in = 0;
    std::uint64_t own_domain_bytes = 0;
    double max_ratio = 0;
    for (const auto& c : run.clients) {
        bytes_in += c->bytes_in;
        own_domain_bytes += c->own_domain_bytes;
        if (c->own_domain_bytes > 0) {
            max_ratio = std::max(max_ratio, static_cast<double>(c->bytes_in) /
                                                static_cast<double>(c->own_domain_bytes));
        }
    }
    const auto confirmed = s.room_size > 0 ? run.own_confirmed : run.confirmed_seen;
    const double ratio =
        own_domain_bytes > 0 ? static_cast<double>(bytes_in) / static_cast<double>(own_domain_bytes) : 0.0;
    nlohmann::json out{{"label", s.label},
                       {"mode", s.room_size > 0 ? "rooms" : "open"},
                       {"clients", s.clients},
                       {"room_size", s.room_size > 0 ? s.room_size : s.clients},
                       {"rate", s.rate},
                       {"offered_per_s", s.rate * s.clients},
                       {"seconds", elapsed},
                       {"events_per_s", static_cast<double>(confirmed) / elapsed},
                       {"bytes_per_client_per_s", static_cast<double>(bytes_in) / s.clients / elapsed},
                       {"traffic_ratio", ratio},
                       {"max_traffic_ratio", max_ratio},
                       {"scheduled", run.scheduled},
                       {"own_confirmations", l.size() - run.unconfirmed},
                       {"unconfirmed", run.unconfirmed},
                       {"invalidated", run.invalidated},
                       {"lost", run.lost},
                       {"p50_ms", percentile_ms(l, 0.50)},
                       {"p99_ms", percentile_ms(l, 0.99)},
                       {"p999_ms", percentile_ms(l, 0.999)},
                       {"max_ms", l.empty() ? 0.0 : l.back() / 1000.0},
                       {"linked", run.linked},
                       {"alive", still_alive},
                       {"unlinked", run.unlinked},
                       {"unlinked_reasons", run.unlinked_reasons}};
    if (rss_before >= 0) out["rss_before_kib"] = rss_before;
    if (rss_idle >= 0) out["rss_idle_kib"] = rss_idle;
    if (rss_end >= 0) out["rss_kib"] = rss_end;
    std::cout << out.dump() << std::endl;
    return l.size() > run.unconfirmed && run.unlinked == 0 ? 0 : 1;
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
        else if (arg == "--rate")
            s.rate = std::stod(value);
        else if (arg == "--warmup")
            s.warmup = std::stod(value);
        else if (arg == "--source-base")
            s.source_base = value;
        else if (arg == "--link-timeout")
            s.link_timeout = std::stod(value);
        else if (arg == "--ready-file")
            s.ready_file = value;
        else if (arg == "--no-delay")
            s.no_delay = value == "1";
        else if (arg == "--room-size")
            s.room_size = std::stoi(value);
        else {
            std::cerr << "unknown argument " << arg << "\n";
            return 2;
        }
    }
    if (s.port == 0) {
        std::cerr
            << "usage: krmx_net_load --port P [--pid PID] [--clients N] [--seconds S] [--window W]\n"
               "         [--rate R] [--warmup S] [--source-base A] [--link-timeout S] [--ready-file PATH]\n"
               "         [--no-delay 1] [--room-size K]\n";
        return 2;
    }
    if (s.room_size > 0 && !s.open_loop()) {
        std::cerr << "--room-size needs --rate (rooms are an open-loop mode)\n";
        return 2;
    }
    const bool open_loop = s.open_loop();
    const long rss_before = !open_loop && s.pid ? rss_kib(s.pid) : -1;
    const tcp::endpoint endpoint{boost::asio::ip::make_address("127.0.0.1"), s.port};
    std::uint32_t source_base = 0;
    if (!s.source_base.empty()) source_base = boost::asio::ip::make_address_v4(s.source_base).to_uint();
    for (int i = 0; i < s.clients; ++i) {
        run.clients.push_back(std::make_shared<Client>(run, run.context, i));
        const boost::asio::ip::address_v4 source{source_base + static_cast<std::uint32_t>(i)};
        run.clients.back()->start(endpoint, s.source_base.empty() ? nullptr : &source);
    }
    if (open_loop) return run_open_loop(run);
    if (!run_until(
            run.context, [&] { return run.linked == s.clients || run.failed > 0; },
            std::chrono::seconds{60}) ||
        run.failed > 0) {
        std::cerr << "only " << run.linked << " of " << s.clients << " clients linked (" << run.failed
                  << " failed)\n";
        return 1;
    }
    // Idle means the link storm is over: the server tells every linked user of every link, O(N^2) frames
    // still being written when the last client sees its own krmx/linked. Then a little more for the server
    // to release its write buffers, and measure the memory of idle linked connections.
    if (!run_until(
            run.context, [&] { return run.joined_complete == s.clients || run.failed > 0; },
            std::chrono::seconds{60}) ||
        run.failed > 0) {
        std::cerr << "only " << run.joined_complete << " of " << s.clients
                  << " clients received krmx/joined for every user within 60 s (" << run.failed
                  << " failed)\n";
        return 1;
    }
    (void)run_until(
        run.context, [] { return false; }, std::chrono::milliseconds{300});
    const long rss_idle = s.pid ? rss_kib(s.pid) : -1;

    run.loading = true;
    for (auto& c : run.clients) {
        for (int w = 0; w < s.window; ++w) c->send_append();
    }
    const auto warmup =
        std::chrono::duration<double>(s.warmup >= 0 ? s.warmup : std::min(0.5, s.seconds / 4));
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
    run.finished = true;
    for (auto& c : run.clients) {
        error_code ignored;
        c->socket.close(ignored);
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
