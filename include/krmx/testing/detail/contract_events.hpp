#pragma once
// What the store contract suites append and name things with: events in one call, and random names that
// do not compress.

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/store/event_store.hpp"

namespace krmx::testing::detail {

/// `size` random letters and digits (the same for the same `seed`): valid UTF-8 that does not compress, as
/// PostgreSQL would compress a long index entry of repeated characters until it fits.
[[nodiscard]] inline std::string random_name(std::size_t size, unsigned seed) {
    static constexpr std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::mt19937 generator{seed};
    std::uniform_int_distribution<std::size_t> pick{0, alphabet.size() - 1};
    std::string name(size, ' ');
    for (char& c : name) c = alphabet[pick(generator)];
    return name;
}

/// An event with a type and a payload (none when null), and optionally an id.
[[nodiscard]] inline NewEvent event(std::string type, nlohmann::json payload = nullptr, std::string id = {}) {
    NewEvent e;
    e.id = std::move(id);
    e.type = std::move(type);
    if (!payload.is_null()) e.payload = std::move(payload);
    return e;
}

}  // namespace krmx::testing::detail
