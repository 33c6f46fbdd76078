#pragma once
// The Krmx username rule, written out by hand: @krmx/server@0.5.5 checks
// `^[a-zA-Z](?!.*[._@-]{2})[a-zA-Z0-9._@-]{0,30}[a-zA-Z0-9]$`, and std::regex (ECMAScript flavour aside)
// is slow and throws on pathological input; a loop over the bytes says the same in a few lines.

#include <cstddef>
#include <string_view>

namespace krmx::net {

namespace detail {
[[nodiscard]] constexpr bool username_letter(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
[[nodiscard]] constexpr bool username_alnum(char c) noexcept {
    return username_letter(c) || (c >= '0' && c <= '9');
}
[[nodiscard]] constexpr bool username_special(char c) noexcept {
    return c == '.' || c == '_' || c == '@' || c == '-';
}
}  // namespace detail

/// True when `name` is a valid Krmx username: 2 to 32 characters from letters, digits and `._@-`, starting
/// with a letter, ending with a letter or digit, and no two of `._@-` next to each other.
[[nodiscard]] constexpr bool is_krmx_username(std::string_view name) noexcept {
    if (name.size() < 2 || name.size() > 32) return false;
    if (!detail::username_letter(name.front()) || !detail::username_alnum(name.back())) return false;
    bool previous_special = false;
    for (const char c : name) {
        const bool special = detail::username_special(c);
        if (!special && !detail::username_alnum(c)) return false;
        if (special && previous_special) return false;
        previous_special = special;
    }
    return true;
}

}  // namespace krmx::net
