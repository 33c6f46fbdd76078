#pragma once
// The text diffs of jsondiffpatch's deltas, `[patch_text, 0, 2]`: jsondiffpatch writes them (with
// diff-match-patch) when a string of 60 or more characters changes into another such string. The patch
// text is diff-match-patch's variation of unidiff:
//
//     @@ -13,11 +13,11 @@      one hunk: start (1-based) and length before, start and length after
//      own                     ' ' context, '-' deleted, '+' inserted; the rest of the line is %-encoded
//     -fox                     (JavaScript's encodeURI, with %20 written as a space)
//     +cat
//
// Offsets and lengths count UTF-16 code units (JavaScript strings), and each hunk's start is where it
// applies in the text as patched by the hunks before it. JavaScript applies hunks fuzzily (a hunk that no
// longer fits is moved or silently dropped); here every hunk must fit exactly where it says, so that a
// string that is not the one the diff was made from is refused rather than patched into something else.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/detail/utf8.hpp"

namespace krmx::detail {

/// `text` (UTF-8) as UTF-16 code units, or nullopt when it is not valid UTF-8.
[[nodiscard]] inline std::optional<std::u16string> utf8_to_utf16(std::string_view text) {
    std::u16string out;
    out.reserve(text.size());
    const char* p = text.data();
    const char* const end = p + text.size();
    while (p < end) {
        const std::size_t length = utf8_sequence_length(p, end);
        if (length == 0) return std::nullopt;
        std::uint32_t cp = static_cast<unsigned char>(*p);
        if (length > 1) {
            cp &= 0x3Fu >> (length - 1);  // the payload bits of the lead byte
            for (std::size_t i = 1; i < length; ++i)
                cp = (cp << 6) | (static_cast<unsigned char>(p[i]) & 0x3Fu);
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out += static_cast<char16_t>(0xD800 + (cp >> 10));
            out += static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
        } else {
            out += static_cast<char16_t>(cp);
        }
        p += length;
    }
    return out;
}

/// `text` (UTF-16) as UTF-8, or nullopt when it holds a lone surrogate (no UTF-8 for it).
[[nodiscard]] inline std::optional<std::string> utf16_to_utf8(std::u16string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        std::uint32_t cp = text[i];
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < text.size() && text[i + 1] >= 0xDC00 &&
            text[i + 1] <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (text[i + 1] - 0xDC00u);
            ++i;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            return std::nullopt;
        }
        append_utf8(out, cp);
    }
    return out;
}

/// JavaScript's decodeURI, which diff-match-patch applies to every line of a hunk: %XX sequences are UTF-8
/// bytes, except that the escapes of `;/?:@&=+$,#` stay as they are written. Nullopt where decodeURI
/// throws (a bad escape, bytes that are not one UTF-8 character).
[[nodiscard]] inline std::optional<std::u16string> decode_uri(std::u16string_view text) {
    const auto hex = [&](std::size_t at) -> int {
        if (at + 3 > text.size() || text[at] != u'%') return -1;
        int value = 0;
        for (std::size_t i = at + 1; i < at + 3; ++i) {
            const char16_t c = text[i];
            value <<= 4;
            if (c >= u'0' && c <= u'9')
                value |= c - u'0';
            else if (c >= u'a' && c <= u'f')
                value |= c - u'a' + 10;
            else if (c >= u'A' && c <= u'F')
                value |= c - u'A' + 10;
            else
                return -1;
        }
        return value;
    };
    std::u16string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] != u'%') {
            out += text[i++];
            continue;
        }
        const int first = hex(i);
        if (first < 0) return std::nullopt;
        if (first < 0x80) {
            if (std::u16string_view{u";/?:@&=+$,#"}.find(static_cast<char16_t>(first)) !=
                std::u16string_view::npos) {
                out.append(text.substr(i, 3));  // decodeURI keeps the escapes of reserved characters
            } else {
                out += static_cast<char16_t>(first);
            }
            i += 3;
            continue;
        }
        const std::size_t length = (first & 0xE0) == 0xC0   ? 2
                                   : (first & 0xF0) == 0xE0 ? 3
                                   : (first & 0xF8) == 0xF0 ? 4
                                                            : 0;
        if (length == 0) return std::nullopt;
        char bytes[4] = {static_cast<char>(first), 0, 0, 0};
        for (std::size_t k = 1; k < length; ++k) {
            const int next = hex(i + 3 * k);
            if (next < 0 || (next & 0xC0) != 0x80) return std::nullopt;
            bytes[k] = static_cast<char>(next);
        }
        if (utf8_sequence_length(bytes, bytes + length) != length)
            return std::nullopt;  // overlong, surrogate, ...
        auto decoded = utf8_to_utf16(std::string_view{bytes, length});
        if (!decoded) return std::nullopt;
        out += *decoded;
        i += 3 * length;
    }
    return out;
}

/// One hunk of a patch text: where it applies and the text it expects and leaves there.
struct TextHunk {
    std::size_t start = 0;  ///< 0-based, in the text as patched by the hunks before it (UTF-16 units)
    std::size_t length_before = 0;
    std::size_t length_after = 0;
    std::u16string before;  ///< context and deleted text
    std::u16string after;   ///< context and inserted text
};

/// The hunks of a patch text (diff-match-patch's patch_fromText). Throws std::invalid_argument.
[[nodiscard]] inline std::vector<TextHunk> parse_text_patch(std::u16string_view text) {
    // A number of the header: parseInt of \d+ or \d*, bounded far above any string's length.
    const auto number = [](std::u16string_view digits) -> std::size_t {
        if (digits.size() > 15) throw std::invalid_argument("text diff: a hunk header number is too large");
        std::size_t value = 0;
        for (const char16_t c : digits) value = value * 10 + static_cast<std::size_t>(c - u'0');
        return value;
    };
    const auto digits_at = [](std::u16string_view line, std::size_t& at) {
        const std::size_t from = at;
        while (at < line.size() && line[at] >= u'0' && line[at] <= u'9') ++at;
        return line.substr(from, at - from);
    };
    // `@@ -A[,B] +C[,D] @@`: a missing length is 1; a length of exactly "0" means the start is not 1-based
    // (an empty range is written at the position before it).
    const auto range = [&](std::u16string_view line, std::size_t& at, std::size_t& start,
                           std::size_t& length) {
        const auto first = digits_at(line, at);
        if (first.empty()) return false;
        if (at < line.size() && line[at] == u',') ++at;
        const auto second = digits_at(line, at);
        start = number(first);
        if (second == u"0") {
            length = 0;
            return true;
        }
        length = second.empty() ? 1 : number(second);
        if (start == 0) return false;  // 1-based
        --start;
        return true;
    };
    std::vector<TextHunk> hunks;
    if (text.empty()) return hunks;
    std::vector<std::u16string_view> lines;
    for (std::size_t from = 0;;) {
        const std::size_t nl = text.find(u'\n', from);
        lines.push_back(
            text.substr(from, nl == std::u16string_view::npos ? std::u16string_view::npos : nl - from));
        if (nl == std::u16string_view::npos) break;
        from = nl + 1;
    }
    std::size_t i = 0;
    while (i < lines.size()) {
        const auto line = lines[i];
        TextHunk hunk;
        std::size_t at = 4;
        std::size_t start_before = 0;
        const bool header =
            line.substr(0, 4) == u"@@ -" && range(line, at, start_before, hunk.length_before) &&
            line.substr(at, 2) == u" +" && (at += 2, range(line, at, hunk.start, hunk.length_after)) &&
            line.substr(at) == u" @@";
        if (!header) throw std::invalid_argument("text diff: a line is not a hunk header (@@ -a,b +c,d @@)");
        for (++i; i < lines.size(); ++i) {
            const auto body = lines[i];
            if (body.empty()) continue;  // diff-match-patch skips blank lines (the text ends with one)
            if (body[0] == u'@') break;
            const auto decoded = decode_uri(body.substr(1));
            if (!decoded) throw std::invalid_argument("text diff: a hunk line has a malformed %-escape");
            if (body[0] == u' ') {
                hunk.before += *decoded;
                hunk.after += *decoded;
            } else if (body[0] == u'-') {
                hunk.before += *decoded;
            } else if (body[0] == u'+') {
                hunk.after += *decoded;
            } else {
                throw std::invalid_argument(
                    "text diff: a hunk line starts with neither ' ', '-', '+' nor '@'");
            }
        }
        if (hunk.before.size() != hunk.length_before || hunk.after.size() != hunk.length_after) {
            throw std::invalid_argument("text diff: a hunk's lines do not have the lengths its header gives");
        }
        hunks.push_back(std::move(hunk));
    }
    return hunks;
}

/// `text` patched by a text diff, every hunk exactly where it says. Throws std::invalid_argument when the
/// patch text is malformed or does not fit `text`.
[[nodiscard]] inline std::string apply_text_patch(std::string_view text, std::string_view patch_text) {
    const auto patch16 = utf8_to_utf16(patch_text);
    if (!patch16) throw std::invalid_argument("text diff: the patch text is not valid UTF-8");
    const auto hunks = parse_text_patch(*patch16);
    auto result = utf8_to_utf16(text);
    if (!result) throw std::invalid_argument("text diff: the string to patch is not valid UTF-8");
    for (const auto& hunk : hunks) {
        if (hunk.start > result->size() || result->size() - hunk.start < hunk.before.size() ||
            std::u16string_view{*result}.substr(hunk.start, hunk.before.size()) != hunk.before) {
            throw std::invalid_argument(
                "text diff: a hunk does not fit the string (not the string it was made from)");
        }
        result->replace(hunk.start, hunk.before.size(), hunk.after);
    }
    auto utf8 = utf16_to_utf8(*result);
    if (!utf8) throw std::invalid_argument("text diff: the patched string would split a surrogate pair");
    return std::move(*utf8);
}

}  // namespace krmx::detail
