// Abusive clients for the hostile load test (run_hostile_load.sh): what an internet-facing Krmx server
// meets besides its players. One thread, one io_context, raw Asio TCP with hand-written WebSocket framing
// (as net_load.cpp), every mode at once if asked:
//
//   krmx_net_abuse --port P [--source 127.0.0.2] [--seconds 10] --mode spray [--mode churn ...] | --mode all
//
//   spray      a fresh throw-away username on a fresh connection, dropped (RST) right after krmx/accepted or
//              krmx/rejected; a few in flight (--spray-inflight 4), at most --count usernames (0: no limit)
//   churn      one connection: link, unlink, link, ... the same user, as fast as the answers come
//   slowloris  --slowloris N connections that send their HTTP upgrade one byte every --drip-ms and never
//              finish it; reopened when the server drops them
//   nonreader  --nonreaders N linked users that never read again (and keep a small receive buffer, so
//              that the server, not the kernel, holds what they do not take); at the end each is drained
//              to see whether the server dropped it
//   tiny       --tiny N linked connections sending {"type":"t"} (a valid custom message, so that the
//              connection stays linked and only the frame rate limit can stop it) as fast as the socket
//              takes them; relinked after the server closes them
//   oversized  --oversized N connections each sending one 1.5 MiB text frame (over the 1 MiB limit)
//   storm      connections opened and reset at once, --storm-inflight at a time, as fast as possible; and
//              upgraded connections held open, up to --storm-hold, reopened when the server closes them
//   joiner     not in `all`: links --username once and measures its link cost (the frames and bytes it gets
//              from krmx/accepted to its own krmx/linked, the last of the roster, and the time), then leaves
//
// Every connection binds to --source (a port picked per destination at connect time) and everything has a
// deadline: the program ends --seconds after it starts (the joiner and a spray with --count sooner), plus
// at most ~1.5 s to drain and report. Prints one JSON line: per mode what was attempted, connected,
// accepted, rejected (by reason), closed by the server (by close code; `eof`: a FIN without a close frame,
// `reset`: a TCP reset), connect failures and our own timeouts.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <nlohmann/json.hpp>

#include "client_frames.hpp"

using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

using namespace krmx_bench;

struct Settings {
    std::uint16_t port = 0;
    std::string source = "127.0.0.2";
    double seconds = 10;
    std::set<std::string> modes;
    std::string tag;  // prefix of every username; default: x<pid>
    long count = 0;
    int spray_inflight = 4;
    int slowloris = 200;
    int drip_ms = 300;
    int nonreaders = 20;
    int tiny = 1;
    int oversized = 2;
    int storm_inflight = 8;
    int storm_hold = 500;
    std::string username;  // the joiner's
};

constexpr std::size_t read_buffer_bytes = 16 * 1024;  // grows for a longer frame

std::string link_text(std::string_view username) {
    return R"({"type":"krmx/link","payload":{"username":")" + std::string{username} +
           R"(","version":"0.5.4"}})";
}

bool has_type(std::string_view text, std::string_view type) {
    return text.find(R"("type":")" + std::string{type} + "\"") != std::string_view::npos;
}

bool names(std::string_view text, std::string_view username) {
    return text.find(R"("username":")" + std::string{username} + "\"") != std::string_view::npos;
}

// The reason of a krmx/rejected, with the username replaced so that reasons group.
std::string rejection_reason(std::string_view text, std::string_view username) {
    constexpr std::string_view key = R"("reason":")";
    const auto at = text.find(key);
    if (at == std::string_view::npos) return "?";
    const auto from = at + key.size();
    std::string reason{text.substr(from, text.find('"', from) - from)};
    if (!username.empty()) {
        for (auto p = reason.find(username); p != std::string::npos; p = reason.find(username, p + 3)) {
            reason.replace(p, username.size(), "<u>");
        }
    }
    return reason;
}

struct Counts {
    std::uint64_t attempted = 0;  // what the mode tried: links, connections or frames (see each mode)
    std::uint64_t connected = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t upgraded = 0;
    std::uint64_t accepted = 0;
    std::uint64_t timeouts = 0;  // our own deadlines
    std::uint64_t frames_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::map<std::string, std::uint64_t> refused_upgrade;   // HTTP status, or how the socket ended
    std::map<std::string, std::uint64_t> rejected;          // krmx/rejected reasons
    std::map<std::string, std::uint64_t> closed_by_server;  // close code, eof, reset
    std::map<std::string, std::uint64_t> extra;             // per mode

    void reject(std::string reason) {
        // A server that puts details in its reasons must not grow this without bound.
        if (rejected.size() >= 16 && !rejected.contains(reason)) reason = "other";
        ++rejected[reason];
    }

    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json out{{"attempted", attempted},
                           {"connected", connected},
                           {"connect_failures", connect_failures},
                           {"upgraded", upgraded},
                           {"accepted", accepted},
                           {"timeouts", timeouts},
                           {"frames_sent", frames_sent},
                           {"bytes_sent", bytes_sent},
                           {"refused_upgrade", refused_upgrade},
                           {"rejected", rejected},
                           {"closed_by_server", closed_by_server}};
        for (const auto& [k, v] : extra) out[k] = v;
        return out;
    }
};

struct Env {
    boost::asio::io_context context{1};
    tcp::endpoint server;
    boost::asio::ip::address_v4 source;
    std::string tag;
    bool stopping = false;
};

// How a connection ended, when the mode did not end it itself.
enum class Ending : std::uint8_t {
    connect_failed,  // socket, bind or connect failed
    timeout,         // our deadline
    refused,         // no 101 answer to the upgrade (an HTTP status, or the socket ended before)
    closed,          // after the upgrade: a close frame (its code), eof or reset
};

// One raw client socket. The mode drives it through callbacks; end() reports once, abort() is silent. The
// callbacks usually hold the connection itself: they are dropped (later, never while one runs) once it ended.
class Conn : public std::enable_shared_from_this<Conn> {
  public:
    using EndFn = std::function<void(Ending, const std::string&)>;
    std::function<void(std::string_view)> on_text;  // each text frame after the upgrade
    EndFn on_end;

    Conn(Env& env, Counts& counts)
        : env_(&env), counts_(&counts), socket_(env.context), deadline_(env.context) {}

    // Connects from the source address; `rcvbuf` > 0 shrinks the receive buffer first.
    void connect(std::function<void()> then, int rcvbuf = 0) {
        error_code ec;
        socket_.open(tcp::v4(), ec);
        if (!ec && rcvbuf > 0) socket_.set_option(boost::asio::socket_base::receive_buffer_size(rcvbuf), ec);
        const int one = 1;
        if (!ec)
            (void)::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                               sizeof one);
        if (!ec) socket_.bind(tcp::endpoint{env_->source, 0}, ec);
        if (ec) {
            // Without a socket the asynchronous path never starts: report from the loop, not from here.
            boost::asio::post(env_->context, [self = shared_from_this(), ec] {
                self->end(Ending::connect_failed, ec.message());
            });
            return;
        }
        socket_.async_connect(env_->server,
                              [self = shared_from_this(), then = std::move(then)](const error_code& e) {
                                  if (self->ended_) return;
                                  if (e) return self->end(Ending::connect_failed, e.message());
                                  ++self->counts_->connected;
                                  then();
                              });
    }

    // Everything this connection does must be over by `d` from now; otherwise it ends as a timeout.
    void deadline(SteadyClock::duration d) {
        deadline_.expires_after(d);
        deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
            if (!ec) self->end(Ending::timeout, "timeout");
        });
    }
    void no_deadline() { deadline_.cancel(); }

    static std::string upgrade_request(std::uint16_t port) {
        return "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    }

    // Sends the upgrade request and reads the answer; `then` after a 101, with frames read from then on.
    void upgrade(std::function<void()> then) {
        send_raw(upgrade_request(env_->server.port()));
        upgraded_then_ = std::move(then);
        read_handshake();
    }

    // Reads whatever comes without interpreting it (a slowloris waits for the server to give up).
    void read_raw() {
        socket_.async_read_some(boost::asio::buffer(in_.data(), in_.size()),
                                [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                    if (self->ended_) return;
                                    if (ec) return self->end(Ending::refused, self->how(ec));
                                    const std::string_view got{self->in_.data(), n};
                                    if (got.starts_with("HTTP/")) {
                                        return self->end(Ending::refused, std::string{got.substr(9, 3)});
                                    }
                                    self->read_raw();
                                });
    }

    void send_text(std::string_view text) {
        append_masked_frame(out_, op_text, text);
        ++counts_->frames_sent;
        flush();
    }
    // Bytes as they are (a prepared batch of frames, a request).
    void send_raw(std::string_view bytes) {
        out_.append(bytes);
        flush();
    }
    [[nodiscard]] bool writing() const noexcept { return write_in_flight_ || !out_.empty(); }
    std::function<void()> on_written;  // after each completed write, when nothing more is queued

    // Frames are read until the connection ends, unless stop_reading() (the non-reader).
    void stop_reading() noexcept { reading_ = false; }
    void resume_reading() {
        if (reading_ || ended_) return;
        reading_ = true;
        if (!read_pending_) read();
    }

    // Silent: the mode ended it. `reset`: a TCP reset (no FIN, no TIME_WAIT on our side), as a client that
    // just vanishes.
    void abort(bool reset = true) {
        if (ended_) return;
        ended_ = true;
        close_socket(reset);
        release();
    }
    [[nodiscard]] bool ended() const noexcept { return ended_; }

  private:
    void end(Ending how, const std::string& detail) {
        if (ended_) return;
        ended_ = true;
        close_socket(true);
        if (on_end) on_end(how, detail);
        release();
    }

    void release() {
        boost::asio::post(env_->context, [self = shared_from_this()] {
            self->on_text = nullptr;
            self->on_end = nullptr;
            self->on_written = nullptr;
            self->upgraded_then_ = nullptr;
        });
    }

    void close_socket(bool reset) {
        error_code ignored;
        deadline_.cancel();
        if (reset) socket_.set_option(tcp::socket::linger(true, 0), ignored);
        socket_.close(ignored);
    }

    static std::string how(const error_code& ec) {
        if (ec == boost::asio::error::eof) return "eof";
        if (ec == boost::asio::error::connection_reset) return "reset";
        return ec.message();
    }

    void read_handshake() {
        socket_.async_read_some(boost::asio::buffer(in_.data() + in_used_, in_.size() - in_used_),
                                [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                    if (self->ended_) return;
                                    if (ec) return self->end(Ending::refused, self->how(ec));
                                    self->in_used_ += n;
                                    self->on_handshake_read();
                                });
    }

    void on_handshake_read() {
        const std::string_view received{in_.data(), in_used_};
        const auto end_of_header = received.find("\r\n\r\n");
        if (end_of_header == std::string_view::npos) {
            if (in_used_ == in_.size()) return end(Ending::refused, "response too large");
            return read_handshake();
        }
        const auto status = received.substr(0, received.find("\r\n"));
        if (!status.starts_with("HTTP/1.1 101")) {
            return end(Ending::refused, status.size() >= 12 ? std::string{status.substr(9, 3)} : "malformed");
        }
        const std::size_t frames_start = end_of_header + 4;
        std::memmove(in_.data(), in_.data() + frames_start, in_used_ - frames_start);
        in_used_ -= frames_start;
        ++counts_->upgraded;
        if (upgraded_then_) std::exchange(upgraded_then_, nullptr)();
        if (ended_) return;
        if (!parse_frames()) return;
        if (reading_) read();
    }

    void read() {
        read_pending_ = true;
        socket_.async_read_some(boost::asio::buffer(in_.data() + in_used_, in_.size() - in_used_),
                                [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                    self->read_pending_ = false;
                                    if (self->ended_) return;
                                    if (ec) return self->end(Ending::closed, self->how(ec));
                                    self->in_used_ += n;
                                    if (self->parse_frames() && self->reading_) self->read();
                                });
    }

    // As net_load.cpp's: every complete frame in the buffer; false once the connection ended.
    bool parse_frames() {
        std::size_t at = 0;
        while (in_used_ - at >= 2) {
            const auto frame =
                read_server_frame(reinterpret_cast<const unsigned char*>(in_.data() + at), in_used_ - at);
            if (frame.status == ServerFrame::Status::malformed) {
                end(Ending::closed, "malformed frame");
                return false;
            }
            if (frame.status == ServerFrame::Status::too_large) {
                end(Ending::closed, "frame too large");
                return false;
            }
            if (frame.status == ServerFrame::Status::incomplete) {
                if (frame.total() > in_.size()) in_.resize(frame.total());
                break;
            }
            const std::size_t total = frame.total();
            const unsigned char opcode = frame.opcode;
            const std::string_view payload{in_.data() + at + frame.header, static_cast<std::size_t>(frame.length)};
            if (opcode == op_text) {
                if (on_text) on_text(payload);
                if (ended_) return false;
            } else if (opcode == op_ping) {
                append_masked_frame(out_, op_pong, payload);
                flush();
            } else if (opcode == op_close) {
                end(Ending::closed, std::to_string(close_code(payload)));
                return false;
            } else if (opcode != op_pong) {
                end(Ending::closed, "opcode " + std::to_string(opcode));
                return false;
            }
            at += total;
        }
        if (at > 0) {
            std::memmove(in_.data(), in_.data() + at, in_used_ - at);
            in_used_ -= at;
        }
        return true;
    }

    void flush() {
        if (write_in_flight_ || out_.empty() || ended_) return;
        writing_.swap(out_);
        out_.clear();
        write_in_flight_ = true;
        boost::asio::async_write(socket_, boost::asio::buffer(writing_),
                                 [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                     self->write_in_flight_ = false;
                                     if (self->ended_) return;
                                     self->counts_->bytes_sent += n;
                                     if (ec) return self->end(Ending::closed, how(ec));
                                     self->flush();
                                     if (!self->write_in_flight_ && self->on_written) self->on_written();
                                 });
    }

    Env* env_;
    Counts* counts_;
    tcp::socket socket_;
    boost::asio::steady_timer deadline_;
    std::vector<char> in_ = std::vector<char>(read_buffer_bytes);
    std::size_t in_used_ = 0;
    std::string out_;
    std::string writing_;
    std::function<void()> upgraded_then_;
    bool write_in_flight_ = false;
    bool read_pending_ = false;
    bool reading_ = true;
    bool ended_ = false;
};

// Counts an ending the usual way.
void count_ending(Counts& counts, Ending how, const std::string& detail) {
    switch (how) {
        case Ending::connect_failed:
            ++counts.connect_failures;
            break;
        case Ending::timeout:
            ++counts.timeouts;
            break;
        case Ending::refused:
            ++counts.refused_upgrade[detail];
            break;
        case Ending::closed:
            ++counts.closed_by_server[detail];
            break;
    }
}

class Mode {
  public:
    Mode(Env& env, std::string name) : env_(env), name_(std::move(name)) {}
    Mode(const Mode&) = delete;
    Mode& operator=(const Mode&) = delete;
    virtual ~Mode() = default;
    virtual void start() = 0;
    /// The time is up: end every connection (the non-reader drains first).
    virtual void stop() {
        for (const auto& c : live_) c->abort();
        live_.clear();
    }
    /// Whether the mode has nothing more to do before the time is up.
    [[nodiscard]] virtual bool done() const { return false; }
    /// After stop(): whether the mode still waits for something (bounded by the caller).
    [[nodiscard]] virtual bool finishing() const { return false; }
    [[nodiscard]] virtual nlohmann::json report() const { return counts_.to_json(); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

  protected:
    std::shared_ptr<Conn> make() {
        auto c = std::make_shared<Conn>(env_, counts_);
        live_.insert(c);
        return c;
    }
    void forget(const std::shared_ptr<Conn>& c) { live_.erase(c); }
    // `f` after `d`, unless the time is up by then.
    void later(SteadyClock::duration d, std::function<void()> f) {
        auto timer = std::make_shared<boost::asio::steady_timer>(env_.context, d);
        timer->async_wait([this, timer, f = std::move(f)](const error_code& ec) {
            if (!ec && !env_.stopping) f();
        });
    }

    Env& env_;
    std::string name_;
    Counts counts_;
    std::unordered_set<std::shared_ptr<Conn>> live_;
};

// A fresh throw-away user per connection, dropped as soon as the server answered the link.
class Spray final : public Mode {
  public:
    Spray(Env& env, int inflight, long count) : Mode(env, "spray"), inflight_(inflight), count_(count) {}
    void start() override {
        for (int i = 0; i < inflight_; ++i) next();
    }
    [[nodiscard]] bool done() const override {
        return count_ > 0 && static_cast<long>(counts_.attempted) >= count_ && live_.empty();
    }

  private:
    void next() {
        if (env_.stopping || (count_ > 0 && static_cast<long>(counts_.attempted) >= count_)) return;
        ++counts_.attempted;
        const std::string username = env_.tag + "s" + std::to_string(counts_.attempted);
        auto c = make();
        Conn* raw = c.get();
        c->deadline(5s);
        c->on_end = [this, c](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            forget(c);
            // A server that refuses connections must not turn this into a busy loop.
            later(how == Ending::closed ? 0ms : 50ms, [this] { next(); });
        };
        c->on_text = [this, raw, c, username](std::string_view text) {
            if (has_type(text, "krmx/accepted")) {
                ++counts_.accepted;
            } else if (has_type(text, "krmx/rejected")) {
                counts_.reject(rejection_reason(text, username));
            } else {
                return;
            }
            raw->abort();
            forget(c);
            next();
        };
        c->connect(
            [raw, username] { raw->upgrade([raw, username] { raw->send_text(link_text(username)); }); });
    }

    int inflight_;
    long count_;
};

// One connection linking and unlinking one user as fast as the server answers.
class Churn final : public Mode {
  public:
    explicit Churn(Env& env) : Mode(env, "churn"), username_(env.tag + "c") {}
    void start() override { open(); }

  private:
    void open() {
        auto c = make();
        Conn* raw = c.get();
        c->deadline(5s);
        c->on_end = [this, c](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            forget(c);
            later(100ms, [this] { open(); });
        };
        c->on_text = [this, raw](std::string_view text) {
            if (has_type(text, "krmx/accepted")) {
                ++counts_.accepted;
                raw->send_text(R"({"type":"krmx/unlink"})");
            } else if (has_type(text, "krmx/rejected")) {
                counts_.reject(rejection_reason(text, username_));
                link(*raw);
            } else if (has_type(text, "krmx/unlinked") && names(text, username_)) {
                ++counts_.extra["unlinks"];
                link(*raw);
            }
        };
        c->connect([this, raw] {
            raw->upgrade([this, raw] {
                raw->no_deadline();
                link(*raw);
            });
        });
    }
    void link(Conn& c) {
        if (env_.stopping) return;
        ++counts_.attempted;
        c.send_text(link_text(username_));
    }

    std::string username_;
};

// Upgrade requests that never end, one byte at a time.
class Slowloris final : public Mode {
  public:
    Slowloris(Env& env, int connections, int drip_ms)
        : Mode(env, "slowloris"), n_(connections), drip_(drip_ms) {}
    void start() override {
        for (int i = 0; i < n_; ++i) open();
    }
    // Connections still open count as held until now.
    void stop() override {
        const auto now = SteadyClock::now();
        for (const auto& drip : drips_) {
            if (drip->conn->ended()) continue;
            ++open_at_end_;
            held_max_ = std::max(held_max_, std::chrono::duration<double>(now - drip->opened).count());
        }
        drips_.clear();
        Mode::stop();
    }
    [[nodiscard]] nlohmann::json report() const override {
        auto out = counts_.to_json();
        out["held_s_max"] = held_max_;
        out["held_s_mean_of_dropped"] = ended_ > 0 ? held_sum_ / static_cast<double>(ended_) : 0.0;
        out["open_at_end"] = open_at_end_;
        return out;
    }

  private:
    struct Drip {
        Drip(std::shared_ptr<Conn> c, boost::asio::io_context& context)
            : conn(std::move(c)), timer(context) {}
        std::shared_ptr<Conn> conn;
        boost::asio::steady_timer timer;
        std::size_t sent = 0;
        SteadyClock::time_point opened = SteadyClock::now();
    };

    static std::string without_blank_line(std::string request) {
        request.resize(request.size() - 2);
        return request;
    }
    // The request line and headers of an upgrade, then header lines for ever: the blank line never comes.
    static char byte_at(std::size_t i, const std::string& head) {
        if (i < head.size()) return head[i];
        static constexpr std::string_view pad = "X-Slow: a\r\n";
        return pad[(i - head.size()) % pad.size()];
    }

    void open() {
        if (env_.stopping) return;
        ++counts_.attempted;
        auto c = make();
        auto drip = std::make_shared<Drip>(c, env_.context);
        drips_.insert(drip);
        c->on_end = [this, c, drip](Ending how, const std::string& detail) {
            drip->timer.cancel();
            drips_.erase(drip);
            const double held = std::chrono::duration<double>(SteadyClock::now() - drip->opened).count();
            if (how != Ending::connect_failed) {
                held_max_ = std::max(held_max_, held);
                held_sum_ += held;
                ++ended_;
            }
            // Dropped or answered before the upgrade is the expected outcome: count it as closed by the
            // server.
            count_ending(counts_, how == Ending::refused ? Ending::closed : how, detail);
            forget(c);
            later(100ms, [this] { open(); });
        };
        c->connect([this, drip] {
            drip->conn->read_raw();
            step(drip);
        });
    }

    void step(const std::shared_ptr<Drip>& drip) {
        if (drip->conn->ended() || env_.stopping) return;
        const char byte = byte_at(drip->sent++, head_);
        drip->conn->send_raw(std::string_view{&byte, 1});
        drip->timer.expires_after(std::chrono::milliseconds{drip_});
        drip->timer.async_wait([this, drip](const error_code& ec) {
            if (!ec) step(drip);
        });
    }

    int n_;
    int drip_;
    std::string head_ = without_blank_line(Conn::upgrade_request(env_.server.port()));
    std::unordered_set<std::shared_ptr<Drip>> drips_;
    double held_max_ = 0;
    double held_sum_ = 0;
    std::uint64_t ended_ = 0;
    std::uint64_t open_at_end_ = 0;
};

// Linked users that stop reading.
class Nonreader final : public Mode {
  public:
    Nonreader(Env& env, int n) : Mode(env, "nonreader"), n_(n) {}
    void start() override {
        for (int i = 0; i < n_; ++i) open(i);
    }
    // Drain every silent connection to see whether the server dropped it (FIN, close frame, reset).
    void stop() override {
        draining_ = true;
        for (const auto& c : silent_) c->resume_reading();
        std::erase_if(silent_, [](const auto& c) { return c->ended(); });
        for (const auto& c : live_) {
            if (!silent_.contains(c)) c->abort();
        }
    }
    [[nodiscard]] bool finishing() const override {
        return std::any_of(silent_.begin(), silent_.end(), [](const auto& c) { return !c->ended(); });
    }
    [[nodiscard]] nlohmann::json report() const override {
        auto out = counts_.to_json();
        out["dropped_while_silent"] = dropped_;
        out["still_open"] =
            std::count_if(silent_.begin(), silent_.end(), [](const auto& c) { return !c->ended(); });
        return out;
    }

  private:
    void open(int i) {
        if (env_.stopping) return;
        ++counts_.attempted;
        const std::string username = env_.tag + "n" + std::to_string(i);
        auto c = make();
        Conn* raw = c.get();
        c->deadline(5s);
        c->on_end = [this, c, i](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            if (silent_.erase(c) > 0) ++dropped_;
            forget(c);
            if (!draining_) later(200ms, [this, i] { open(i); });
        };
        c->on_text = [this, raw, c, i, username](std::string_view text) {
            if (silent_.contains(c)) return;  // the drain at the end: only the ending matters
            if (has_type(text, "krmx/accepted")) {
                ++counts_.accepted;
                raw->no_deadline();
                raw->stop_reading();  // this read is the last until the drain
                silent_.insert(c);
            } else if (has_type(text, "krmx/rejected")) {
                counts_.reject(rejection_reason(text, username));
                raw->abort();
                forget(c);
                later(200ms, [this, i] { open(i); });
            }
        };
        // A small receive buffer: the kernel on our side holds little, the server has to.
        c->connect(
            [raw, username] { raw->upgrade([raw, username] { raw->send_text(link_text(username)); }); },
            4096);
    }

    int n_;
    bool draining_ = false;
    std::uint64_t dropped_ = 0;  // found dropped when drained (or while linking)
    std::unordered_set<std::shared_ptr<Conn>> silent_;
};

// Linked connections flooding tiny valid frames.
class Tiny final : public Mode {
  public:
    Tiny(Env& env, int n) : Mode(env, "tiny"), n_(n) {
        for (int i = 0; i < 4096; ++i) append_masked_frame(batch_, op_text, R"({"type":"t"})");
    }
    void start() override {
        for (int i = 0; i < n_; ++i) open(i);
    }
    [[nodiscard]] nlohmann::json report() const override {
        auto out = counts_.to_json();
        out["floods"] = floods_;
        out["ms_to_close_max"] = to_close_max_ms_;
        return out;
    }

  private:
    void open(int i) {
        if (env_.stopping) return;
        const std::string username = env_.tag + "t" + std::to_string(i);
        auto c = make();
        Conn* raw = c.get();
        auto flood_start = std::make_shared<SteadyClock::time_point>();
        c->deadline(5s);
        c->on_end = [this, c, i, flood_start](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            if (*flood_start != SteadyClock::time_point{}) {
                to_close_max_ms_ = std::max(
                    to_close_max_ms_,
                    std::chrono::duration<double, std::milli>(SteadyClock::now() - *flood_start).count());
            }
            forget(c);
            later(200ms, [this, i] { open(i); });
        };
        c->on_text = [this, raw, c, i, username, flood_start](std::string_view text) {
            if (*flood_start != SteadyClock::time_point{}) return;
            if (has_type(text, "krmx/accepted")) {
                ++counts_.accepted;
                ++floods_;
                raw->no_deadline();
                *flood_start = SteadyClock::now();
                raw->on_written = [this, raw] {
                    more(*raw);
                };
                more(*raw);
            } else if (has_type(text, "krmx/rejected")) {
                // E.g. the server has not yet seen the previous connection of this user go.
                counts_.reject(rejection_reason(text, username));
                raw->abort();
                forget(c);
                later(200ms, [this, i] { open(i); });
            }
        };
        c->connect([this, raw, username] {
            raw->upgrade([this, raw, username] {
                ++counts_.attempted;
                raw->send_text(link_text(username));
            });
        });
    }
    void more(Conn& c) {
        if (env_.stopping || c.ended() || c.writing()) return;
        counts_.frames_sent += 4096;
        c.send_raw(batch_);
    }

    int n_;
    std::string batch_;
    std::uint64_t floods_ = 0;
    double to_close_max_ms_ = 0;
};

// Frames over the server's 1 MiB message limit.
class Oversized final : public Mode {
  public:
    Oversized(Env& env, int n) : Mode(env, "oversized"), n_(n) {
        append_masked_frame(frame_, op_text, std::string(std::size_t{3} << 19, 'a'));  // 1.5 MiB
    }
    void start() override {
        for (int i = 0; i < n_; ++i) open();
    }

  private:
    void open() {
        if (env_.stopping) return;
        ++counts_.attempted;
        auto c = make();
        Conn* raw = c.get();
        c->deadline(5s);
        c->on_end = [this, c](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            forget(c);
            later(50ms, [this] { open(); });
        };
        c->connect([this, raw] {
            raw->upgrade([this, raw] {
                ++counts_.frames_sent;
                raw->send_raw(frame_);
            });
        });
    }

    int n_;
    std::string frame_;
};

// Connections opened and reset at once, and connections held open.
class Storm final : public Mode {
  public:
    Storm(Env& env, int inflight, int hold) : Mode(env, "storm"), inflight_(inflight), hold_(hold) {}
    void start() override {
        for (int i = 0; i < inflight_; ++i) flash();
        for (int i = 0; i < hold_; ++i) hold();
    }
    [[nodiscard]] nlohmann::json report() const override {
        auto out = counts_.to_json();
        out["held_max"] = held_max_;
        out["held_at_end"] = held_;
        out["flash_connects"] = flashes_;
        return out;
    }

  private:
    void flash() {
        if (env_.stopping) return;
        ++counts_.attempted;
        ++flashes_;
        auto c = make();
        Conn* raw = c.get();
        c->deadline(2s);
        c->on_end = [this, c](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            forget(c);
            later(how == Ending::connect_failed ? 20ms : 0ms, [this] { flash(); });
        };
        c->connect([this, raw, c] {
            raw->abort();
            forget(c);
            flash();
        });
    }
    void hold() {
        if (env_.stopping) return;
        ++counts_.attempted;
        auto c = make();
        Conn* raw = c.get();
        auto counted = std::make_shared<bool>(false);
        c->deadline(5s);
        c->on_end = [this, c, counted](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            if (*counted) --held_;
            forget(c);
            later(100ms, [this] { hold(); });
        };
        c->connect([this, raw, counted] {
            raw->upgrade([this, raw, counted] {
                raw->no_deadline();
                *counted = true;
                held_max_ = std::max(held_max_, ++held_);
            });
        });
    }

    int inflight_;
    int hold_;
    std::uint64_t flashes_ = 0;
    std::int64_t held_ = 0;
    std::int64_t held_max_ = 0;
};

// A later joiner: what linking costs it.
class Joiner final : public Mode {
  public:
    Joiner(Env& env, std::string username) : Mode(env, "joiner"), username_(std::move(username)) {}
    void start() override {
        ++counts_.attempted;
        auto c = make();
        Conn* raw = c.get();
        c->on_end = [this, c](Ending how, const std::string& detail) {
            count_ending(counts_, how, detail);
            forget(c);
            finished_ = true;
        };
        c->on_text = [this, raw, c](std::string_view text) {
            if (leaving_) return;  // the history that follows the roster is not the link's cost
            const auto now = SteadyClock::now();
            if (accepted_at_ == SteadyClock::time_point{}) {
                if (has_type(text, "krmx/accepted")) {
                    ++counts_.accepted;
                    accepted_at_ = now;
                } else if (has_type(text, "krmx/rejected")) {
                    counts_.reject(rejection_reason(text, username_));
                    finish(*raw, c);
                }
                return;
            }
            ++frames_;
            bytes_ += text.size();
            if (has_type(text, "krmx/linked") && names(text, username_)) {
                linked_at_ = now;
                finish(*raw, c);
            }
        };
        c->connect([this, raw] {
            raw->upgrade([this, raw] {
                link_sent_ = SteadyClock::now();
                raw->send_text(link_text(username_));
            });
        });
    }
    [[nodiscard]] bool done() const override { return finished_; }
    [[nodiscard]] nlohmann::json report() const override {
        auto out = counts_.to_json();
        const auto ms = [](SteadyClock::time_point a, SteadyClock::time_point b) {
            return std::chrono::duration<double, std::milli>(b - a).count();
        };
        out["username"] = username_;
        out["linked"] = linked_at_ != SteadyClock::time_point{};
        if (accepted_at_ != SteadyClock::time_point{}) out["accept_ms"] = ms(link_sent_, accepted_at_);
        if (linked_at_ != SteadyClock::time_point{}) {
            out["roster_frames"] = frames_;
            out["roster_bytes"] = bytes_;
            out["roster_ms"] = ms(accepted_at_, linked_at_);
            out["link_ms"] = ms(link_sent_, linked_at_);
        }
        return out;
    }

  private:
    // Leaves, so that the user is not part of the roster a later joiner measures, then ends.
    void finish(Conn& c, const std::shared_ptr<Conn>& keep) {
        leaving_ = true;
        c.send_text(R"({"type":"krmx/leave"})");
        later(100ms, [this, keep] {
            keep->abort(false);
            forget(keep);
            finished_ = true;
        });
    }

    std::string username_;
    SteadyClock::time_point link_sent_{};
    SteadyClock::time_point accepted_at_{};
    SteadyClock::time_point linked_at_{};
    std::uint64_t frames_ = 0;
    std::uint64_t bytes_ = 0;
    bool leaving_ = false;
    bool finished_ = false;
};

// The last resort against a hang this program did not foresee: a JSON line that says so, and out.
void watchdog(int) {
    constexpr char line[] = "{\"error\":\"watchdog: krmx_net_abuse overran its deadline\"}\n";
    (void)!::write(STDOUT_FILENO, line, sizeof line - 1);
    ::_exit(3);
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    static const std::set<std::string> all = {"spray", "churn",     "slowloris", "nonreader",
                                              "tiny",  "oversized", "storm"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        const std::string value = argv[i + 1];
        if (arg == "--port") {
            s.port = static_cast<std::uint16_t>(std::stoi(value));
        } else if (arg == "--source") {
            s.source = value;
        } else if (arg == "--seconds") {
            s.seconds = std::stod(value);
        } else if (arg == "--mode") {
            if (value == "all") {
                s.modes.insert(all.begin(), all.end());
            } else if (all.contains(value) || value == "joiner") {
                s.modes.insert(value);
            } else {
                std::cerr << "unknown mode " << value << "\n";
                return 2;
            }
        } else if (arg == "--tag") {
            s.tag = value;
        } else if (arg == "--count") {
            s.count = std::stol(value);
        } else if (arg == "--spray-inflight") {
            s.spray_inflight = std::stoi(value);
        } else if (arg == "--slowloris") {
            s.slowloris = std::stoi(value);
        } else if (arg == "--drip-ms") {
            s.drip_ms = std::stoi(value);
        } else if (arg == "--nonreaders") {
            s.nonreaders = std::stoi(value);
        } else if (arg == "--tiny") {
            s.tiny = std::stoi(value);
        } else if (arg == "--oversized") {
            s.oversized = std::stoi(value);
        } else if (arg == "--storm-inflight") {
            s.storm_inflight = std::stoi(value);
        } else if (arg == "--storm-hold") {
            s.storm_hold = std::stoi(value);
        } else if (arg == "--username") {
            s.username = value;
        } else {
            std::cerr << "unknown argument " << arg << "\n";
            return 2;
        }
    }
    if (s.port == 0 || s.modes.empty() || s.seconds <= 0) {
        std::cerr << "usage: krmx_net_abuse --port P [--source A] [--seconds S] --mode "
                     "spray|churn|slowloris|nonreader|tiny|oversized|storm|all|joiner ...\n";
        return 2;
    }
    if (s.tag.empty()) s.tag = "x" + std::to_string(::getpid());

    // Deadline of deadlines: the drain and the report take at most 1.5 s after --seconds.
    ::signal(SIGALRM, watchdog);
    itimerval alarm{};
    const double limit = s.seconds + 1.9;
    alarm.it_value.tv_sec = static_cast<time_t>(limit);
    alarm.it_value.tv_usec =
        static_cast<suseconds_t>((limit - static_cast<double>(alarm.it_value.tv_sec)) * 1e6);
    ::setitimer(ITIMER_REAL, &alarm, nullptr);

    Env env;
    env.server = tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), s.port};
    env.source = boost::asio::ip::make_address_v4(s.source);
    env.tag = s.tag;
    std::vector<std::unique_ptr<Mode>> modes;
    for (const auto& m : s.modes) {
        if (m == "spray") modes.push_back(std::make_unique<Spray>(env, s.spray_inflight, s.count));
        if (m == "churn") modes.push_back(std::make_unique<Churn>(env));
        if (m == "slowloris") modes.push_back(std::make_unique<Slowloris>(env, s.slowloris, s.drip_ms));
        if (m == "nonreader") modes.push_back(std::make_unique<Nonreader>(env, s.nonreaders));
        if (m == "tiny") modes.push_back(std::make_unique<Tiny>(env, s.tiny));
        if (m == "oversized") modes.push_back(std::make_unique<Oversized>(env, s.oversized));
        if (m == "storm") modes.push_back(std::make_unique<Storm>(env, s.storm_inflight, s.storm_hold));
        if (m == "joiner")
            modes.push_back(std::make_unique<Joiner>(env, s.username.empty() ? s.tag + "j" : s.username));
    }

    const auto start = SteadyClock::now();
    const auto until =
        start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s.seconds));
    const auto slice = [&env] {
        env.context.run_for(10ms);
        if (env.context.stopped()) env.context.restart();
    };
    for (auto& m : modes) m->start();
    while (SteadyClock::now() < until &&
           !std::all_of(modes.begin(), modes.end(), [](const auto& m) { return m->done(); })) {
        slice();
    }
    const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    env.stopping = true;
    for (auto& m : modes) m->stop();
    const auto drain_until = SteadyClock::now() + 1s;
    while (SteadyClock::now() < drain_until &&
           std::any_of(modes.begin(), modes.end(), [](const auto& m) { return m->finishing(); })) {
        slice();
    }
    nlohmann::json out{{"source", s.source}, {"seconds", elapsed}, {"tag", s.tag}};
    for (const auto& m : modes) out["modes"][m->name()] = m->report();
    std::cout << out.dump() << std::endl;
    // Whatever is left is cut: the sockets go with the modes.
    for (auto& m : modes) m->stop();
    env.context.stop();
    modes.clear();
    return 0;
}
