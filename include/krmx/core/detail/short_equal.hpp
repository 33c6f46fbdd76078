#pragma once
// Equality of short strings (event type names, dispatcher names) on the hot dispatch paths. Word-sized
// loads the compiler inlines beat both a call to memcmp and a byte loop for names of a few bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace krmx::detail {

#if defined(__GNUC__)
#define KRMX_ALWAYS_INLINE [[gnu::always_inline]]
#else
#define KRMX_ALWAYS_INLINE
#endif

// Inlined always: a call costs as much as the comparison of a short name.
[[nodiscard]] KRMX_ALWAYS_INLINE inline bool short_equal(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    const char* x = a.data();
    const char* y = b.data();
    const auto load8 = [](const char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    const auto load4 = [](const char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    if (n >= 8) {
        for (std::size_t i = 0; i + 8 < n; i += 8)
            if (load8(x + i) != load8(y + i)) return false;
        return load8(x + n - 8) == load8(y + n - 8);  // the last word, overlapping the one before
    }
    if (n >= 4) return load4(x) == load4(y) && load4(x + n - 4) == load4(y + n - 4);
    for (std::size_t i = 0; i < n; ++i)
        if (x[i] != y[i]) return false;
    return true;
}

}  // namespace krmx::detail
