#pragma once
// UTF-8 validation, one rule for every reader of krmx text: RFC 3629, so no overlong forms, no surrogates
// (U+D800..U+DFFF) and nothing past U+10FFFF. What PostgreSQL, JavaScript and nlohmann/json accept alike.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace krmx::detail {

/// The length (1 to 4) of the valid UTF-8 sequence that starts at `p`, or 0 when the bytes there are not
/// one. `p < end`.
[[nodiscard]] inline std::size_t utf8_sequence_length(const char* p, const char* end) noexcept {
    const auto b0 = static_cast<unsigned char>(*p);
    if (b0 < 0x80) return 1;
    std::size_t extra;
    std::uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        extra = 1;
        cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        extra = 2;
        cp = b0 & 0x0Fu;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        extra = 3;
        cp = b0 & 0x07u;
    } else {
        return 0;
    }
    if (static_cast<std::size_t>(end - p) <= extra) return 0;
    for (std::size_t i = 1; i <= extra; ++i) {
        const auto b = static_cast<unsigned char>(p[i]);
        if ((b & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return 0;
    }
    return extra + 1;
}

/// Whether all of `text` is valid UTF-8.
[[nodiscard]] inline bool valid_utf8(std::string_view text) noexcept {
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end) {
        if (static_cast<unsigned char>(*p) < 0x80) {
            ++p;
            continue;
        }
        const std::size_t length = utf8_sequence_length(p, end);
        if (length == 0) return false;
        p += length;
    }
    return true;
}

}  // namespace krmx::detail
