#pragma once
// The one way krmx writes text into JSON and into error messages: a string literal with every character
// that JSON must escape escaped (control characters, NUL included, as \u00XX), so that nothing a player or
// a caller chose can end a message early, break the JSON around it, or read differently to another reader.
// Invalid UTF-8 is never passed on: on the wire it becomes U+FFFD (every JSON reader accepts that), in an
// error message it is shown byte by byte (\xNN), so that the message still says what was there.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "krmx/core/detail/utf8.hpp"

namespace krmx::detail {

/// What becomes of bytes that are not valid UTF-8.
enum class InvalidUtf8 : std::uint8_t {
    replace,     ///< U+FFFD, once per invalid byte: the text stays valid JSON (the wire)
    show_bytes,  ///< `\xNN`: readable, not JSON (error messages)
};

/// Appends `text` as a double-quoted JSON string literal.
inline void append_json_string(std::string& out, std::string_view text,
                               InvalidUtf8 invalid = InvalidUtf8::replace) {
    static constexpr char hex[] = "0123456789abcdef";
    out.reserve(out.size() + text.size() + 2);
    out += '"';
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end) {
        // Runs of printable ASCII (the common case) are copied at once.
        const char* run = p;
        while (run < end) {
            const auto c = static_cast<unsigned char>(*run);
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
            ++run;
        }
        out.append(p, run);
        p = run;
        if (p == end) break;
        const auto c = static_cast<unsigned char>(*p);
        if (c >= 0x80) {
            const std::size_t length = utf8_sequence_length(p, end);
            if (length > 0) {
                out.append(p, length);
                p += length;
            } else if (invalid == InvalidUtf8::replace) {
                out += "\xEF\xBF\xBD";
                ++p;
            } else {
                out += "\\x";
                out += hex[c >> 4];
                out += hex[c & 0xF];
                ++p;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xF];
        }
        ++p;
    }
    out += '"';
}

/// `text` as a JSON string literal (invalid UTF-8 replaced).
[[nodiscard]] inline std::string json_string(std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
}

/// A name (a stream, a type, an id, a user) quoted for an error message: `"a\u0000b"`, `"\xff"`. A
/// message built with it never ends at a NUL and shows every byte that was there.
[[nodiscard]] inline std::string quoted(std::string_view name) {
    std::string out;
    append_json_string(out, name, InvalidUtf8::show_bytes);
    return out;
}

}  // namespace krmx::detail
