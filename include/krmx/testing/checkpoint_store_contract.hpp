#pragma once
// krmx::testing::checkpoint_store_contract<Fixture>(): the contract every krmx checkpoint store keeps (save
// replaces atomically, load and erase, the key rule, states JSON cannot hold, restarts), run on your store.
// krmx runs the same suite on its memory, SQLite and PostgreSQL checkpoint stores.
//
// The fixture has the shape of event_store_contract's: default-constructible (every case makes a fresh
// one, on a place of its own), `open()` gives the store by reference, `reopen()` restarts it on the same
// data, `close()` closes it. A store that keeps the JSON values themselves and never writes them out (as
// krmx::MemoryCheckpointStore does) says `static constexpr bool keeps_json_as_is = true;` in its fixture: the
// case about states that JSON text cannot hold is then skipped.
//
//   const krmx::testing::ContractReport report = krmx::testing::checkpoint_store_contract<MyFixture>();

#include <cmath>
#include <concepts>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/names.hpp"
#include "krmx/testing/contract.hpp"
#include "krmx/testing/detail/contract_events.hpp"
#include "krmx/testing/store_fixture.hpp"

namespace krmx::testing {

namespace detail {
template <class Fixture>
concept opens_checkpoint_store = opens_lvalue<Fixture> && CheckpointStore<opened_store_t<Fixture>>;

/// Whether the fixture's store keeps JSON values as they are (never writes them out as text).
template <class Fixture>
constexpr bool keeps_json_as_is() {
    if constexpr (requires { static_cast<bool>(Fixture::keeps_json_as_is); }) {
        return static_cast<bool>(Fixture::keeps_json_as_is);
    } else {
        return std::is_same_v<opened_store_t<Fixture>, MemoryCheckpointStore>;
    }
}
}  // namespace detail

/// What checkpoint_store_contract runs on: default-constructible (every case makes a fresh one), `open()`
/// gives a krmx::CheckpointStore by reference, `reopen()` restarts it on the same data, `close()` closes it.
template <class Fixture>
concept CheckpointStoreFixture = std::default_initializable<Fixture> &&
    detail::opens_checkpoint_store<Fixture> && detail::restarts<Fixture>;

namespace detail::contract {
template <>
struct Show<Checkpoint> {
    static std::string text(const Checkpoint& c) {
        return "{state " + show(c.state) + ", position " + std::to_string(c.position) + ", version " +
               show(c.version) + "}";
    }
};
}  // namespace detail::contract

namespace detail::checkpoint_store_cases {

using nlohmann::json;

template <class Fixture>
void loads_back(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    KRMX_CHECK_FALSE(c, store.load("counter").has_value());
    const Checkpoint saved{
        .state = {{"counter", 42}, {"claim", "alice"}}, .position = 1234, .version = "model:3"};
    store.save("counter", saved);
    KRMX_CHECK_EQ(c, store.load("counter"), saved);
    KRMX_CHECK_FALSE(c, store.load("other").has_value());
}

template <class Fixture>
void save_replaces(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    store.save("counter", {.state = {{"counter", 1}}, .position = 1, .version = "v1"});
    store.save("counter", {.state = {{"counter", 9}}, .position = 9, .version = "v2"});
    const auto loaded = store.load("counter");
    KRMX_REQUIRE(c, loaded.has_value());
    KRMX_CHECK_EQ(c, loaded->state, json{{"counter", 9}});
    KRMX_CHECK_EQ(c, loaded->position, 9);
    KRMX_CHECK_EQ(c, loaded->version, "v2");
}

template <class Fixture>
void erase(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    store.save("a", {.state = json::array(), .position = 3, .version = "v"});
    store.save("b", {.state = nullptr, .position = 4, .version = "v"});
    KRMX_CHECK(c, store.erase("a"));
    KRMX_CHECK_FALSE(c, store.erase("a"));
    KRMX_CHECK_FALSE(c, store.load("a").has_value());
    KRMX_CHECK(c, store.load("b").has_value());
}

template <class Fixture>
void unstorable_state(ContractChecks& c) {
    if constexpr (keeps_json_as_is<Fixture>()) {
        c.skip("the fixture says keeps_json_as_is: the store never writes JSON out");
    } else {
        Fixture fixture;
        auto& store = fixture.open();
        store.save("a", {.state = {{"ok", true}}, .position = 1, .version = "v"});
        KRMX_CHECK_THROWS_AS(
            c, InvalidAppend,
            store.save("a", {.state = {{"bad", std::string{"\xff"}}}, .position = 2, .version = "v"}));
        // NaN would come back as null; a state nested deeper than a serializer's stack holds crashed it.
        KRMX_CHECK_THROWS_CONTAINING(
            c, StoreError, "checkpoint state holds a number that is not finite",
            store.save("a", {.state = {{"nan", std::nan("")}}, .position = 2, .version = "v"}));
        json deep = json::array();
        json* at = &deep;
        for (int level = 1; level < 100'000; ++level) at = &at->emplace_back(json::array());
        const Checkpoint too_deep{.state = std::move(deep), .position = 2, .version = "v"};
        KRMX_CHECK_THROWS_CONTAINING(c, StoreError, "checkpoint state nests deeper than 128 levels",
                                     store.save("a", too_deep));
        const auto kept = store.load("a");
        KRMX_REQUIRE(c, kept.has_value());
        KRMX_CHECK_EQ(c, kept->position, 1);
    }
}

template <class Fixture>
void key_rule(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const Checkpoint saved{.state = {{"n", 1}}, .position = 7, .version = "v1"};
    const std::string longest = random_name(max_name_bytes, 1);
    store.save(longest, saved);
    KRMX_CHECK_EQ(c, store.load(longest), saved);
    const std::vector<std::pair<std::string, std::string>> bad{
        {random_name(max_name_bytes + 1, 2), "is 1025 bytes long"},
        {random_name(3000, 3), "is 3000 bytes long"},
        {std::string{"a\0b", 3}, R"(key "a\u0000b" holds a NUL)"},
        {"caf\xc3", R"(key "caf\xc3" is not valid UTF-8)"},
    };
    for (const auto& [key, says] : bad) {
        const auto scope = c.info("saving under a key whose error says ", says);
        try {
            store.save(key, saved);
            (void)c.record(false, "a checkpoint was saved under a key no store can hold", {}, __FILE__,
                           __LINE__);
        } catch (const StoreError& e) {
            KRMX_CHECK_CONTAINS(c, says, e.what());
        }
        // It cannot be there, so it is not found.
        KRMX_CHECK_FALSE(c, store.load(key).has_value());
        KRMX_CHECK_FALSE(c, store.erase(key));
    }
    KRMX_CHECK(c, store.erase(longest));
}

template <class Fixture>
void survives_restart(ContractChecks& c) {
    Fixture fixture;
    fixture.open().save("k", {.state = {{"n", 5}}, .position = 77, .version = "v"});
    fixture.reopen();
    KRMX_CHECK_EQ(c, fixture.open().load("k"),
                  Checkpoint{.state = {{"n", 5}}, .position = 77, .version = "v"});
}

template <class Fixture>
inline constexpr contract::Case cases[] = {
    {"a saved checkpoint loads back with its state, position and version", &loads_back<Fixture>},
    {"saving a checkpoint again replaces it", &save_replaces<Fixture>},
    {"an erased checkpoint is gone", &erase<Fixture>},
    {"a checkpoint whose state cannot be stored is refused and the old one kept", &unstorable_state<Fixture>},
    {"checkpoint keys keep the name rule: at most 1024 bytes of UTF-8 without NUL", &key_rule<Fixture>},
    {"checkpoints survive a restart", &survives_restart<Fixture>},
};

}  // namespace detail::checkpoint_store_cases

/// Runs the checkpoint store contract on fresh fixtures of `Fixture` (every case makes its own); the cases
/// whose name contains `options.filter` only, when it is set.
template <class Fixture>
[[nodiscard]] ContractReport checkpoint_store_contract(const ContractOptions& options = {}) {
    if constexpr (CheckpointStoreFixture<Fixture>) {
        return detail::contract::Runner::run("checkpoint store contract",
                                             detail::contract::subject_name<Fixture>(),
                                             detail::checkpoint_store_cases::cases<Fixture>, options);
    } else {
        static_assert(
            std::default_initializable<Fixture>,
            "krmx::testing::checkpoint_store_contract<Fixture>: the fixture must be "
            "default-constructible (every case makes a fresh one, with a store on a place of its own)");
        static_assert(detail::opens_lvalue<Fixture>,
                      "krmx::testing::checkpoint_store_contract<Fixture>: the fixture needs `Store& open()`, "
                      "giving its store by reference (opened again after close())");
        static_assert(detail::restarts<Fixture>,
                      "krmx::testing::checkpoint_store_contract<Fixture>: the fixture needs `reopen()` (a "
                      "restart on the same data) and `close()`");
        static_assert(!detail::opens_lvalue<Fixture> || detail::opens_checkpoint_store<Fixture>,
                      "krmx::testing::checkpoint_store_contract<Fixture>: what `open()` gives is not a "
                      "krmx::CheckpointStore (see the concept in krmx/store/checkpoint_store.hpp)");
        return {};
    }
}

}  // namespace krmx::testing
