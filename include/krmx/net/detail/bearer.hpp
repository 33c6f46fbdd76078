#pragma once
// Bearer tokens of HTTP routes that are not for everyone (metrics, the inspector): the token from an
// `Authorization: Bearer <token>` header, compared in constant time.

#include <cctype>
#include <cstddef>
#include <optional>
#include <string_view>

namespace krmx::net::detail {

// Equal in time that depends on the expected token's length only, not on where the strings differ.
[[nodiscard]] inline bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
        diff = static_cast<unsigned char>(diff | (g ^ static_cast<unsigned char>(expected[i])));
    }
    return diff == 0;
}

// "Bearer <token>" (scheme case-insensitive) to the token; none otherwise.
[[nodiscard]] inline std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept {
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() < scheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return std::nullopt;
    }
    auto token = authorization.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    return token;
}

}  // namespace krmx::net::detail
