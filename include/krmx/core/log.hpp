#pragma once
// krmx::Logger: one line per notable event (a server starts or stops, a link is refused, a peer floods,
// a commit fails), never one per message. Lines go to a sink the application chooses: human_log() (the
// default of the WebSocket server), json_log() (one JSON object per line, for a log collector), or its
// own function. Each event name has a budget of lines per second (a spray of refused links writes a few
// lines, then one that says how many were left out), so a hostile peer cannot fill a disk through it.
//
//   krmx::net::WebSocketServer server{{.log = krmx::json_log(std::cout)}};
//
// A record's `event` is a stable dotted name ("link.refused", "connection.flood") to filter on; its
// `message` is a sentence for people; its fields carry the details (address, username, reason, domain).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "krmx/core/clock.hpp"
#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/detail/token_bucket.hpp"

namespace krmx {

enum class LogLevel : std::uint8_t { debug, info, warning, error };

[[nodiscard]] constexpr std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warning: return "warning";
        case LogLevel::error: return "error";
    }
    return "unknown";
}

struct LogField {
    std::string_view key;
    std::string value;
};

struct LogRecord {
    std::chrono::system_clock::time_point time;
    LogLevel level = LogLevel::info;
    std::string_view event;    ///< a stable dotted name: "server.started", "link.refused", "commit.failed"
    std::string_view message;  ///< one sentence for people
    std::span<const LogField> fields;
    /// Records of this event left out before this one by the per-event budget.
    std::uint64_t suppressed = 0;
};

/// Where records go. Called under the logger's lock, so it may write to a stream without its own.
using LogSink = std::function<void(const LogRecord&)>;

namespace detail {

// 2026-12-06T20:55:00.123Z
[[nodiscard]] inline std::string utc_timestamp(std::chrono::system_clock::time_point time) {
    const auto since = time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since - seconds).count();
    const std::time_t t = static_cast<std::time_t>(seconds.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[32];
    const auto n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string text{out, n};
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(millis));
    return text + ms;
}

// A field value as people read it: bare when it is a plain word, quoted (JSON escapes) otherwise, so that a
// username with spaces or newlines cannot forge another field or line.
inline void append_human_value(std::string& out, std::string_view value) {
    const bool plain = !value.empty() && value.find_first_of(" \"=\\") == std::string_view::npos &&
                       [&] {
                           for (const unsigned char c : value) {
                               if (c < 0x21 || c >= 0x7f) return false;
                           }
                           return true;
                       }();
    if (plain) {
        out += value;
    } else {
        append_json_string(out, value);
    }
}

/// Inside a catch block: what was thrown, for a log line.
[[nodiscard]] inline std::string current_exception_text() noexcept {
    try {
        throw;
    } catch (const std::exception& e) {
        try {
            return e.what();
        } catch (...) {
            return {};
        }
    } catch (...) {
        return "an exception that is no std::exception";
    }
}

}  // namespace detail

/// Lines for people: `2026-12-06T20:55:00.123Z warning connection.flood: a peer sent too many frames
/// address=203.0.113.9`. Records below `min` are left out.
[[nodiscard]] inline LogSink human_log(std::ostream& out = std::clog, LogLevel min = LogLevel::info) {
    return [&out, min](const LogRecord& record) {
        if (record.level < min) return;
        std::string line = detail::utc_timestamp(record.time);
        line += ' ';
        line += to_string(record.level);
        line += ' ';
        line += record.event;
        line += ": ";
        // The message is ours, but may quote a peer's words: no control characters reach the terminal.
        for (const char c : record.message) line += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
        for (const auto& field : record.fields) {
            line += ' ';
            line += field.key;
            line += '=';
            detail::append_human_value(line, field.value);
        }
        if (record.suppressed > 0) {
            line += " (";
            line += std::to_string(record.suppressed);
            line += " more like this left out)";
        }
        line += '\n';
        out << line << std::flush;
    };
}

/// JSON lines: `{"time":"...","level":"warning","event":"connection.flood","message":"...","address":"..."}`;
/// fields are string members after these four, and `suppressed` (a number) when lines were left out.
/// Records below `min` are left out.
[[nodiscard]] inline LogSink json_log(std::ostream& out = std::clog, LogLevel min = LogLevel::info) {
    return [&out, min](const LogRecord& record) {
        if (record.level < min) return;
        std::string line = R"({"time":")" + detail::utc_timestamp(record.time) + R"(","level":")";
        line += to_string(record.level);
        line += R"(","event":)";
        detail::append_json_string(line, record.event);
        line += R"(,"message":)";
        detail::append_json_string(line, record.message);
        for (const auto& field : record.fields) {
            line += ',';
            detail::append_json_string(line, field.key);
            line += ':';
            detail::append_json_string(line, field.value);
        }
        if (record.suppressed > 0) line += R"(,"suppressed":)" + std::to_string(record.suppressed);
        line += "}\n";
        out << line << std::flush;
    };
}

struct LoggerStatistics {
    std::uint64_t written = 0;     ///< records given to the sink
    std::uint64_t suppressed = 0;  ///< records left out by the per-event budget
    std::uint64_t sink_errors = 0; ///< records whose sink threw (the caller goes on)
};

/// The handle code logs through. Copies share one sink, one budget and one lock (any thread may log).
/// A default-made Logger writes nothing.
class Logger {
  public:
    Logger() = default;
    /// `per_event_per_second`: records of one event name written per second (bursts of as many); the rest
    /// are counted and reported with the next one written.
    explicit Logger(LogSink sink, std::size_t per_event_per_second = 10)
        : state_(sink ? std::make_shared<State>(std::move(sink), per_event_per_second) : nullptr) {}

    [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }

    void operator()(LogLevel level, std::string_view event, std::string_view message,
                    std::initializer_list<LogField> fields = {}) const noexcept {
        if (!state_) return;
        std::lock_guard lock{state_->mutex};
        try {
            auto& budget = state_->budgets[std::string{event}];
            const auto limit = state_->per_event_per_second;
            if (limit > 0 && !budget.bucket.take(Clock::now(), limit, std::chrono::seconds{1})) {
                ++budget.suppressed;
                ++state_->statistics.suppressed;
                return;
            }
            const LogRecord record{std::chrono::system_clock::now(), level, event, message,
                                   std::span<const LogField>{fields.begin(), fields.size()}, budget.suppressed};
            budget.suppressed = 0;
            ++state_->statistics.written;
            state_->sink(record);
        } catch (...) {
            ++state_->statistics.sink_errors;  // a log line is never worth a crash
        }
    }
    void info(std::string_view event, std::string_view message, std::initializer_list<LogField> fields = {}) const noexcept {
        (*this)(LogLevel::info, event, message, fields);
    }
    void warning(std::string_view event, std::string_view message, std::initializer_list<LogField> fields = {}) const noexcept {
        (*this)(LogLevel::warning, event, message, fields);
    }
    void error(std::string_view event, std::string_view message, std::initializer_list<LogField> fields = {}) const noexcept {
        (*this)(LogLevel::error, event, message, fields);
    }

    [[nodiscard]] LoggerStatistics statistics() const {
        if (!state_) return {};
        std::lock_guard lock{state_->mutex};
        return state_->statistics;
    }

  private:
    struct Budget {
        detail::TokenBucket bucket;
        std::uint64_t suppressed = 0;
    };
    struct State {
        State(LogSink s, std::size_t n) : sink(std::move(s)), per_event_per_second(n) {}
        std::mutex mutex;
        LogSink sink;
        std::size_t per_event_per_second;
        std::map<std::string, Budget, std::less<>> budgets;  // one per event name: a fixed, small set
        LoggerStatistics statistics;
    };
    std::shared_ptr<State> state_;
};

}  // namespace krmx
