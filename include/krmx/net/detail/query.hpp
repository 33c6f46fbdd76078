#pragma once
// The path and query of an HTTP request target, and URLSearchParams-like lookups in the query: the HTTP
// checks of a Krmx server (docs/protocol.md, section 1). Decodes `%XX` and `+` as a browser does.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace krmx::net::detail {

/// `/path?query#fragment` -> {"/path", "query"}.
[[nodiscard]] inline std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    const auto hash = target.find('#');
    if (hash != std::string_view::npos) target = target.substr(0, hash);
    const auto question = target.find('?');
    if (question == std::string_view::npos) return {target, {}};
    return {target.substr(0, question), target.substr(question + 1)};
}

/// The value of a hexadecimal digit, or -1.
[[nodiscard]] constexpr int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

[[nodiscard]] inline std::string url_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 &&
                   hex_digit(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
            i += 2;
        } else {
            out += c;  // a lone '%' stays, as in URLSearchParams
        }
    }
    return out;
}

/// The first value of parameter `name` in a query string, decoded; nothing when absent.
[[nodiscard]] inline std::optional<std::string> query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        const std::string key = url_decode(pair.substr(0, eq));
        if (key != name) continue;
        return eq == std::string_view::npos ? std::string{} : url_decode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

/// Whether a query satisfies every expectation (`.name`, `.expect`: bool present/absent, string equal,
/// or a predicate over a present value).
template <class Parameters>
[[nodiscard]] bool query_satisfies(std::string_view query, const Parameters& parameters) {
    for (const auto& p : parameters) {
        const auto value = query_value(query, p.name);
        const bool ok = std::visit(
            [&value](const auto& expect) -> bool {
                using E = std::decay_t<decltype(expect)>;
                if constexpr (std::is_same_v<E, bool>) {
                    return value.has_value() == expect;
                } else if constexpr (std::is_same_v<E, std::string>) {
                    return value && *value == expect;
                } else {
                    if (!value || !expect) return false;
                    try {
                        return expect(*value);
                    } catch (...) {
                        return false;
                    }
                }
            },
            p.expect);
        if (!ok) return false;
    }
    return true;
}

}  // namespace krmx::net::detail
