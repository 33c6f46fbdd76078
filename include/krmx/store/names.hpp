#pragma once
// The one rule for names that stores and lock providers keep: stream ids, event ids, event types,
// dispatchers and lock names. Every backend holds the same names, so that code moved from memory to SQLite
// to PostgreSQL never meets a name one of them cannot store: valid UTF-8 (PostgreSQL's text refuses
// anything else), no NUL character (PostgreSQL's text cannot hold one), at most `max_name_bytes` bytes
// (PostgreSQL indexes names, and an index entry must fit a third of a page whatever the text compresses
// to). A name that breaks the rule is refused before any I/O, with a message that shows it escaped.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/detail/utf8.hpp"

namespace krmx {

/// The longest name (stream id, event id, event type, dispatcher, lock name) any store accepts, in bytes.
inline constexpr std::size_t max_name_bytes = 1024;

namespace detail {

/// Why `name`, used as `what` ("stream name", "event type", ...), breaks the name rule, or nothing when it
/// keeps it. Empty names break it unless `may_be_empty`.
[[nodiscard]] inline std::optional<std::string> name_problem(std::string_view what, std::string_view name,
                                                             bool may_be_empty = false) {
    if (name.empty()) {
        if (may_be_empty) return std::nullopt;
        return "the " + std::string{what} + " is empty";
    }
    // Long names are shown cut: the message says what was wrong, not the whole name again.
    const auto shown = [&] {
        constexpr std::size_t show = 64;
        return name.size() <= show ? quoted(name) : quoted(name.substr(0, show)) + "...";
    };
    if (name.size() > max_name_bytes) {
        return "the " + std::string{what} + " " + shown() + " is " + std::to_string(name.size()) +
               " bytes long; names are at most " + std::to_string(max_name_bytes) + " bytes";
    }
    if (name.find('\0') != std::string_view::npos) {
        return "the " + std::string{what} + " " + shown() + " holds a NUL character";
    }
    if (!valid_utf8(name)) return "the " + std::string{what} + " " + shown() + " is not valid UTF-8";
    return std::nullopt;
}

}  // namespace detail
}  // namespace krmx
