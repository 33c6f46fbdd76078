// detail::short_equal compares names with word-sized loads: every length, a difference at every place.

#include <string>

#include "catch.hpp"
#include "krmx/core/detail/short_equal.hpp"

using krmx::detail::short_equal;

TEST_CASE("short names are equal exactly when every byte is", "[core][detail]") {
    for (std::size_t n = 0; n <= 40; ++n) {
        std::string a(n, 'x');
        for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i % 26);
        const std::string same = a;  // another buffer: equality may not come from the pointer
        INFO("length " << n);
        CHECK(short_equal(a, same));
        for (std::size_t i = 0; i < n; ++i) {
            std::string other = a;
            other[i] = static_cast<char>(other[i] ^ 0x20);
            INFO("differs at " << i);
            CHECK_FALSE(short_equal(a, other));
        }
        CHECK_FALSE(short_equal(a, a + "a"));
        if (n > 0) CHECK_FALSE(short_equal(a, std::string_view{a}.substr(1)));
    }
}

TEST_CASE("names compare equal when they are windows into larger text", "[core][detail]") {
    const std::string text = R"({"type":"increment","payload":3})";
    CHECK(short_equal(std::string_view{text}.substr(9, 9), "increment"));
    CHECK_FALSE(short_equal(std::string_view{text}.substr(9, 9), "incremenT"));
}
