#pragma once
// krmx::testing::event_store_contract<Fixture>(): the contract every krmx event store keeps (appends with
// expected revisions, idempotent repeats, the name and JSON rules, reads, for_each_event, subscriptions,
// restarts, concurrent writers), run on your store. krmx runs the same suite on its memory, SQLite and
// PostgreSQL stores.
//
// The fixture owns one store on a place of its own (a fresh directory, a fresh schema), so that cases never
// share events; every case makes a fresh fixture:
//
//   struct MyStoreFixture {
//       static constexpr const char* name = "my store";    // optional: names the report
//       MyStoreFixture();                                   // a fresh place, the store opened on it
//       MyStore& open();        // the store (opened again after close())
//       void reopen();          // a restart: closed and opened again on the same place; only what reached
//                               //   the place survives (a memory store keeps everything)
//       void close();           // closed: subscriptions stop, the handle goes away
//   };
//   const krmx::testing::ContractReport report = krmx::testing::event_store_contract<MyStoreFixture>();
//
// `event_store_contract<MyStoreFixture>({.filter = "subscription"})` runs only the cases whose name contains
// the text. Error messages are part of the contract: every store refuses the same input with the same words
// (InvalidAppend, WrongExpectedRevision and DuplicateEventId say what is wrong, names quoted and escaped);
// krmx's stores share their input checks, and a store of yours calls the same ones (krmx::check_append,
// storable_name and matches_nothing, krmx/store/append_checks.hpp).

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/names.hpp"
#include "krmx/testing/contract.hpp"
#include "krmx/testing/detail/contract_events.hpp"
#include "krmx/testing/store_fixture.hpp"
#include "krmx/testing/subscription_recorder.hpp"

namespace krmx::testing {


namespace detail::contract {

template <>
struct Show<AppendResult> {
    static std::string text(const AppendResult& r) {
        return "{first_position " + std::to_string(r.first_position) + ", last_position " +
               std::to_string(r.last_position) + ", first_revision " + std::to_string(r.first_revision) +
               ", last_revision " + std::to_string(r.last_revision) +
               (r.already_stored ? ", already stored}" : "}");
    }
};

template <>
struct Show<RecordedEvent> {
    static std::string text(const RecordedEvent& e) {
        return "{position " + std::to_string(e.position) + ", stream " + show(e.stream) + ", revision " +
               std::to_string(e.revision) + ", id " + show(e.id) + ", type " + show(e.type) + ", payload " +
               show(e.payload) + "}";
    }
};

}  // namespace detail::contract

namespace detail::event_store_cases {

using contract::show;
using nlohmann::json;

inline std::vector<Position> positions_of(const std::vector<RecordedEvent>& events) {
    std::vector<Position> result;
    for (const auto& e : events) result.push_back(e.position);
    return result;
}

/// The message of a stored exception.
inline std::string error_text(const std::exception_ptr& error) {
    if (!error) return "(no error)";
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "(not a std::exception)";
    }
}

// Each filter of `cases` finds the positions beside it, read in batches and streamed alike.
template <class Store>
void check_filters(ContractChecks& c, const Store& store,
                   const std::vector<std::pair<EventFilter, std::vector<Position>>>& cases) {
    for (const auto& [filter, expected] : cases) {
        const auto scope = c.info("filtering streams ", filter.streams, " and types ", filter.types);
        KRMX_CHECK_EQ(c, positions_of(store.read_all(0, read_unbounded, filter)), expected);
        std::vector<Position> streamed;
        (void)for_each_event(
            store, 0, [&](const RecordedEvent& e) { streamed.push_back(e.position); }, filter);
        KRMX_CHECK_EQ(c, streamed, expected);
    }
}

// The parts of an event that are names, each set to a name in turn on an otherwise good append.
enum class NamePart { stream, id, type, dispatcher };
inline constexpr NamePart name_parts[] = {NamePart::stream, NamePart::id, NamePart::type,
                                          NamePart::dispatcher};
inline const char* part_name(NamePart part) {
    switch (part) {
        case NamePart::stream:
            return "the stream";
        case NamePart::id:
            return "the event id";
        case NamePart::type:
            return "the event type";
        case NamePart::dispatcher:
            return "the dispatcher";
    }
    return "?";
}

// Appends one event with `name` as its `part`; returns the InvalidAppend's message, or nothing when the
// store took it.
template <class Store>
std::optional<std::string> append_named(Store& store, NamePart part, const std::string& name) {
    NewEvent e = event("named", {{"n", 1}});
    std::string stream = "named-stream";
    switch (part) {
        case NamePart::stream:
            stream = name;
            break;
        case NamePart::id:
            e.id = name;
            break;
        case NamePart::type:
            e.type = name;
            break;
        case NamePart::dispatcher:
            e.dispatcher = name;
            break;
    }
    try {
        (void)store.append(stream, ExpectedRevision::any(), e);
        return std::nullopt;
    } catch (const InvalidAppend& error) {
        return std::string{error.what()};
    }
}

// A value of `depth` nested arrays (0: a number), built without recursion and without copying a level (a
// copy of a deep value recurses).
inline json nested_arrays(int depth) {
    if (depth == 0) return 7;
    json root = json::array();
    json* at = &root;
    for (int level = 1; level < depth; ++level) {
        at->push_back(json::array());
        at = &at->back();
    }
    return root;
}

// Appends `count` events of type "tick" with payload {"n": i} to `stream`.
template <class Store>
void append_ticks(Store& store, const std::string& stream, int count, int first = 0) {
    for (int i = first; i < first + count; ++i) {
        (void)store.append(stream, ExpectedRevision::any(), event("tick", {{"n", i}}));
    }
}

// ---- appends ----

template <class Fixture>
void empty_store(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    KRMX_CHECK_EQ(c, store.head_position(), 0);
    KRMX_CHECK(c, store.read_all().empty());
    KRMX_CHECK(c, store.read_stream("nothing").empty());
    KRMX_CHECK_FALSE(c, store.stream_revision("nothing").has_value());
}

template <class Fixture>
void survives_restart(ContractChecks& c) {
    Fixture fixture;
    auto& before = fixture.open();
    (void)before.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1"));
    (void)before.append("t", ExpectedRevision::no_stream(), event("b", {{"n", 2}}));
    fixture.reopen();
    auto& store = fixture.open();
    KRMX_CHECK_EQ(c, store.head_position(), 2);
    KRMX_CHECK_EQ(c, store.stream_revision("s"), 0);
    const auto all = store.read_all();
    KRMX_REQUIRE_EQ(c, all.size(), 2);
    KRMX_CHECK_EQ(c, all[0].id, "id-1");
    KRMX_CHECK_EQ(c, all[1].payload, json{{"n", 2}});
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::exact(0), event("c")), AppendResult{3, 3, 1, 1});
    // An idempotent repeat is recognised across a restart too.
    KRMX_CHECK(
        c, store.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1")).already_stored);
}

template <class Fixture>
void dense_positions(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const std::vector<NewEvent> two{event("a"), event("b")};
    const AppendResult first = store.append("alpha", ExpectedRevision::no_stream(), two);
    KRMX_CHECK_EQ(c, first, AppendResult{1, 2, 0, 1, false});
    KRMX_CHECK_EQ(c, store.append("beta", ExpectedRevision::any(), event("c")),
                  AppendResult{3, 3, 0, 0, false});
    KRMX_CHECK_EQ(c, store.append("alpha", ExpectedRevision::exact(1), event("d")),
                  AppendResult{4, 4, 2, 2, false});

    KRMX_CHECK_EQ(c, store.head_position(), 4);
    KRMX_CHECK_EQ(c, store.stream_revision("alpha"), 2);
    KRMX_CHECK_EQ(c, store.stream_revision("beta"), 0);
    const auto all = store.read_all();
    KRMX_REQUIRE_EQ(c, all.size(), 4);
    for (std::size_t i = 0; i < all.size(); ++i) KRMX_CHECK_EQ(c, all[i].position, i + 1);
    KRMX_CHECK_EQ(c, all[3].stream, "alpha");
    KRMX_CHECK_EQ(c, all[3].revision, 2);
    KRMX_CHECK_EQ(c, all[3].type, "d");
}

template <class Fixture>
void fields_intact(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    NewEvent full;
    full.id = "0b5c8f8e-6a53-4d8e-9d7f-2f0a5b1c9e11";
    full.type = "claim";
    full.payload = json{{"by", "älice ✓"}, {"items", {1, 2.5, nullptr, true}}, {"nested", {{"deep", "x"}}}};
    full.dispatcher = "alice";
    full.timestamp =
        std::chrono::system_clock::time_point{std::chrono::nanoseconds{1'700'000'000'123'456'789LL}};
    full.metadata = json{{"trace", "t-1"}, {"hops", 2}};
    NewEvent no_payload = event("ping");
    NewEvent null_payload = event("nothing");
    null_payload.payload = json(nullptr);
    const std::vector<NewEvent> events{full, no_payload, null_payload};
    (void)store.append("game/1", ExpectedRevision::no_stream(), events);

    const auto all = store.read_all();
    KRMX_REQUIRE_EQ(c, all.size(), 3);
    const RecordedEvent& read = all[0];
    KRMX_CHECK_EQ(c, read.position, 1);
    KRMX_CHECK_EQ(c, read.stream, "game/1");
    KRMX_CHECK_EQ(c, read.revision, 0);
    KRMX_CHECK_EQ(c, read.id, full.id);
    KRMX_CHECK_EQ(c, read.type, "claim");
    KRMX_CHECK_EQ(c, read.payload, full.payload);
    KRMX_CHECK_EQ(c, read.dispatcher, "alice");
    KRMX_CHECK_EQ(c, read.timestamp, full.timestamp);
    KRMX_CHECK_EQ(c, read.metadata, full.metadata);
    KRMX_CHECK_FALSE(c, all[1].payload.has_value());
    KRMX_REQUIRE(c, all[2].payload.has_value());
    KRMX_CHECK(c, all[2].payload->is_null());
    KRMX_CHECK_EQ(c, store.read_stream("game/1"), all);
}

template <class Fixture>
void fills_in_defaults(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const auto before = std::chrono::system_clock::now();
    NewEvent bare = event("x");
    bare.metadata = nullptr;
    const std::vector<NewEvent> events{bare, event("y"), event("z")};
    (void)store.append("s", ExpectedRevision::any(), events);
    const auto after = std::chrono::system_clock::now();

    const auto all = store.read_all();
    KRMX_REQUIRE_EQ(c, all.size(), 3);
    std::set<std::string> ids;
    for (const auto& e : all) {
        const auto scope = c.info("checking the event at position ", e.position);
        KRMX_CHECK_EQ(c, e.id.size(), 36);
        ids.insert(e.id);
        KRMX_CHECK(c, e.timestamp >= before);
        KRMX_CHECK(c, e.timestamp <= after);
        KRMX_CHECK_EQ(c, e.metadata, json::object());
    }
    KRMX_CHECK_EQ(c, ids.size(), 3);
}

template <class Fixture>
void expects_no_stream(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("first"));
    try {
        (void)store.append("s", ExpectedRevision::no_stream(), event("second"));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const WrongExpectedRevision& e) {
        KRMX_CHECK_EQ(c, e.stream(), "s");
        KRMX_CHECK_EQ(c, e.expected(), ExpectedRevision::no_stream());
        KRMX_CHECK_EQ(c, e.actual(), 0);
        KRMX_CHECK_CONTAINS(c, "revision 0", e.what());
    }
    KRMX_CHECK_EQ(c, store.head_position(), 1);
}

template <class Fixture>
void expects_stream_exists(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    try {
        (void)store.append("s", ExpectedRevision::stream_exists(), event("first"));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const WrongExpectedRevision& e) {
        KRMX_CHECK_FALSE(c, e.actual().has_value());
    }
    KRMX_CHECK_EQ(c, store.head_position(), 0);
    (void)store.append("s", ExpectedRevision::any(), event("first"));
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::stream_exists(), event("second")).last_revision, 1);
}

template <class Fixture>
void expects_exact_revision(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    KRMX_CHECK_THROWS_AS(c, WrongExpectedRevision, store.append("s", ExpectedRevision::exact(0), event("a")));
    (void)store.append("s", ExpectedRevision::no_stream(), event("a"));
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::exact(0), event("b")).first_revision, 1);
    try {
        (void)store.append("s", ExpectedRevision::exact(0), event("c"));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const WrongExpectedRevision& e) {
        KRMX_CHECK_EQ(c, e.actual(), 1);
    }
    KRMX_CHECK_THROWS_AS(c, WrongExpectedRevision, store.append("s", ExpectedRevision::exact(5), event("c")));
    KRMX_CHECK_EQ(c, store.stream_revision("s"), 1);
    KRMX_CHECK_EQ(c, store.head_position(), 2);
}

// A failed append after one event ("id-a" in "s") leaves only that event, and blocks nothing after it.
template <class Fixture, class Failing>
void failed_append_writes_nothing(ContractChecks& c, Failing failing) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a", {{"n", 1}}, "id-a"));
    failing(store);
    KRMX_CHECK_EQ(c, store.head_position(), 1);
    KRMX_CHECK_EQ(c, store.read_all().size(), 1);
    KRMX_CHECK_EQ(c, store.stream_revision("s"), 0);
    // The failed append left nothing behind that blocks the next one.
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::exact(0), event("b", nullptr, "id-b")),
                  AppendResult{2, 2, 1, 1});
}

template <class Fixture>
void failed_append_wrong_revision(ContractChecks& c) {
    failed_append_writes_nothing<Fixture>(c, [&](auto& store) {
        const std::vector<NewEvent> events{event("b"), event("c")};
        KRMX_CHECK_THROWS_AS(c, WrongExpectedRevision,
                             store.append("s", ExpectedRevision::no_stream(), events));
    });
}

template <class Fixture>
void failed_append_invalid_event(ContractChecks& c) {
    failed_append_writes_nothing<Fixture>(c, [&](auto& store) {
        const std::vector<NewEvent> events{event("b"), event(""), event("c")};
        KRMX_CHECK_THROWS_AS(c, InvalidAppend, store.append("s", ExpectedRevision::any(), events));
    });
}

template <class Fixture>
void failed_append_stored_id(ContractChecks& c) {
    failed_append_writes_nothing<Fixture>(c, [&](auto& store) {
        const std::vector<NewEvent> events{event("b", nullptr, "id-b"), event("x", {{"n", 2}}, "id-a")};
        KRMX_CHECK_THROWS_AS(c, DuplicateEventId, store.append("s", ExpectedRevision::any(), events));
    });
}

template <class Fixture>
void repeated_append(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("other", ExpectedRevision::any(), event("noise"));
    const std::vector<NewEvent> events{event("a", {{"n", 1}}, "id-1"), event("b", {{"n", 2}}, "id-2")};
    const AppendResult original = store.append("s", ExpectedRevision::no_stream(), events);
    KRMX_CHECK_EQ(c, original, AppendResult{2, 3, 0, 1, false});

    AppendResult expected_repeat = original;
    expected_repeat.already_stored = true;
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::no_stream(), events), expected_repeat);
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::any(), events), expected_repeat);
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::stream_exists(), events), expected_repeat);
    // The tail of the original append on its own is a repeat too.
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::exact(0), events[1]),
                  AppendResult{3, 3, 1, 1, true});
    // A repeat after more events were appended still finds the originals.
    (void)store.append("s", ExpectedRevision::any(), event("c"));
    KRMX_CHECK_EQ(c, store.append("s", ExpectedRevision::no_stream(), events), expected_repeat);

    KRMX_CHECK_EQ(c, store.head_position(), 4);
    KRMX_CHECK_EQ(c, store.read_stream("s").size(), 3);
}

// After "id-1" was stored in "s" at revision 0, `reuse` tries it for another event; nothing is written.
template <class Fixture, class Reuse>
void id_reused(ContractChecks& c, Reuse reuse) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1"));
    reuse(store);
    KRMX_CHECK_EQ(c, store.head_position(), 1);
}

template <class Fixture>
void id_reused_other_content(ContractChecks& c) {
    id_reused<Fixture>(c, [&](auto& store) {
        try {
            (void)store.append("s", ExpectedRevision::any(), event("a", {{"n", 99}}, "id-1"));
            KRMX_FAIL(c, "the append should have failed");
        } catch (const DuplicateEventId& e) {
            KRMX_CHECK_EQ(c, e.event_id(), "id-1");
            KRMX_CHECK_EQ(c, e.stored_at(), 1);
        }
    });
}

template <class Fixture>
void id_reused_other_stream(ContractChecks& c) {
    id_reused<Fixture>(c, [&](auto& store) {
        KRMX_CHECK_THROWS_AS(c, DuplicateEventId,
                             store.append("t", ExpectedRevision::any(), event("a", {{"n", 1}}, "id-1")));
    });
}

template <class Fixture>
void id_reused_other_revision(ContractChecks& c) {
    id_reused<Fixture>(c, [&](auto& store) {
        KRMX_CHECK_THROWS_AS(c, DuplicateEventId,
                             store.append("s", ExpectedRevision::exact(3), event("a", {{"n", 1}}, "id-1")));
    });
}

template <class Fixture>
void id_reused_other_dispatcher(ContractChecks& c) {
    id_reused<Fixture>(c, [&](auto& store) {
        NewEvent changed = event("a", {{"n", 1}}, "id-1");
        changed.dispatcher = "mallory";
        KRMX_CHECK_THROWS_AS(c, DuplicateEventId, store.append("s", ExpectedRevision::any(), changed));
    });
}

template <class Fixture>
void partly_repeated(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("a", nullptr, "id-1"));
    const std::vector<NewEvent> stored_then_new{event("a", nullptr, "id-1"), event("b", nullptr, "id-2")};
    KRMX_CHECK_THROWS_AS(c, DuplicateEventId, store.append("s", ExpectedRevision::any(), stored_then_new));
    const std::vector<NewEvent> new_then_stored{event("b", nullptr, "id-2"), event("a", nullptr, "id-1")};
    KRMX_CHECK_THROWS_AS(c, DuplicateEventId, store.append("s", ExpectedRevision::any(), new_then_stored));
    KRMX_CHECK_EQ(c, store.head_position(), 1);
    KRMX_CHECK_EQ(c, store.read_all().size(), 1);
}

template <class Fixture>
void bad_input(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const auto check_refused = [&](std::string_view stream, const std::vector<NewEvent>& events,
                                   const std::string& mentions) {
        const auto scope =
            c.info("appending to ", show(stream), " (the error should mention ", show(mentions), ")");
        try {
            (void)store.append(stream, ExpectedRevision::any(), events);
            (void)c.record(false, "the append should have failed", {}, __FILE__, __LINE__);
        } catch (const InvalidAppend& e) {
            KRMX_CHECK_CONTAINS(c, mentions, e.what());
        }
    };
    check_refused("", {event("a")}, "stream name is empty");
    check_refused("s", {}, "no events");
    check_refused("s", {event("")}, "event type is empty");
    NewEvent array_metadata = event("a");
    array_metadata.metadata = json::array({1, 2});
    check_refused("s", {array_metadata}, "not a JSON object");
    check_refused("s", {event("a", json{{"bad", std::string{"\xff\xfe"}}})},
                  "holds text that is not valid UTF-8");
    check_refused("s", {event("a", json{{std::string{"\xff"}, 1}})}, "holds text that is not valid UTF-8");
    check_refused("s", {event("a", nullptr, "same"), event("b", nullptr, "same")}, "repeats the event id");

    KRMX_CHECK_EQ(c, store.head_position(), 1);
    KRMX_CHECK_EQ(c, store.read_all().size(), 1);
    KRMX_CHECK_EQ(c, store.stream_revision("s"), 0);
}

// ---- names and JSON ----

template <class Fixture>
void longest_names(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const std::string stream = random_name(max_name_bytes, 1);
    NewEvent longest = event(random_name(max_name_bytes, 2), {{"n", 1}}, random_name(max_name_bytes, 3));
    longest.dispatcher = random_name(max_name_bytes, 4);
    KRMX_CHECK_EQ(c, store.append(stream, ExpectedRevision::no_stream(), longest), AppendResult{1, 1, 0, 0});
    const auto read = store.read_stream(stream);
    KRMX_REQUIRE_EQ(c, read.size(), 1);
    KRMX_CHECK_EQ(c, read[0].stream, stream);
    KRMX_CHECK_EQ(c, read[0].id, longest.id);
    KRMX_CHECK_EQ(c, read[0].type, longest.type);
    KRMX_CHECK_EQ(c, read[0].dispatcher, longest.dispatcher);
    KRMX_CHECK_EQ(c, store.stream_revision(stream), 0);
    KRMX_CHECK_EQ(
        c, store.read_all(0, read_unbounded, EventFilter{.streams = {stream}, .types = {longest.type}}),
        read);

    for (const NamePart part : name_parts) {
        for (const std::size_t size : {max_name_bytes + 1, std::size_t{3000}}) {
            const auto scope = c.info("giving ", part_name(part), " a name of ", size, " bytes");
            const auto refused = append_named(store, part, random_name(size, 5));
            KRMX_REQUIRE(c, refused.has_value());
            KRMX_CHECK_CONTAINS(c, std::to_string(size) + " bytes long", *refused);
            KRMX_CHECK_CONTAINS(c, "at most 1024 bytes", *refused);
        }
    }
    KRMX_CHECK_EQ(c, store.head_position(), 1);
    KRMX_CHECK_EQ(c, store.read_all().size(), 1);
    KRMX_CHECK_FALSE(c, store.stream_revision("named-stream").has_value());
}

template <class Fixture>
void bad_names(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    // Each bad name and how an error message shows it: every byte, escaped, nothing cut off.
    const std::vector<std::pair<std::string, std::string>> bad{
        {std::string{"a\0b", 3}, R"("a\u0000b")"},
        {std::string{"\0", 1}, R"("\u0000")"},
        {"\xff", R"("\xff")"},
        {"caf\xc3", R"("caf\xc3")"},            // cut inside a character
        {"\xc0\xaf", R"("\xc0\xaf")"},          // an overlong '/'
        {"\xed\xa0\x80", R"("\xed\xa0\x80")"},  // a surrogate
        {std::string{"ok\0\xfe", 4}, R"("ok\u0000\xfe")"},
    };
    for (const NamePart part : name_parts) {
        for (const auto& [name, shown] : bad) {
            const auto scope = c.info("giving ", part_name(part), " the name ", shown);
            const auto refused = append_named(store, part, name);
            KRMX_REQUIRE(c, refused.has_value());
            KRMX_CHECK_CONTAINS(c, shown, *refused);
        }
    }
    KRMX_CHECK_EQ(c, store.head_position(), 1);
    KRMX_CHECK_EQ(c, store.read_all().size(), 1);
    KRMX_CHECK_FALSE(c, store.stream_revision("named-stream").has_value());
    // Empty: a stream and a type need a name, an id (the store makes one) and a dispatcher do not.
    KRMX_CHECK(c, append_named(store, NamePart::stream, "").has_value());
    KRMX_CHECK(c, append_named(store, NamePart::type, "").has_value());
    KRMX_CHECK_FALSE(c, append_named(store, NamePart::id, "").has_value());
    KRMX_CHECK_FALSE(c, append_named(store, NamePart::dispatcher, "").has_value());
    KRMX_CHECK_EQ(c, store.head_position(), 3);
}

template <class Fixture>
void impossible_names_find_nothing(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("t"));
    (void)store.append("u", ExpectedRevision::any(), event("t"));
    for (const std::string& name : {random_name(3000, 6), random_name(max_name_bytes + 1, 7),
                                    std::string{"\xff"}, std::string{"s\xc3"}, std::string{"s\0", 2}}) {
        const auto scope = c.info("reading with a name of ", name.size(), " bytes: ", show(name));
        KRMX_CHECK(c, store.read_stream(name).empty());
        KRMX_CHECK_FALSE(c, store.stream_revision(name).has_value());
        const std::vector<std::pair<EventFilter, std::vector<Position>>> cases{
            {EventFilter{.streams = {name}}, {}},
            {EventFilter{.types = {name}}, {}},
            {EventFilter{.streams = {name, "u"}}, {2}},
            {EventFilter{.types = {"t", name}}, {1, 2}},
            {EventFilter{.streams = {"s"}, .types = {name}}, {}},
        };
        check_filters(c, store, cases);
        SubscriptionRecorder recorder;
        auto subscription =
            store.subscribe(SubscribeFrom::start(), recorder.handlers(), EventFilter{.streams = {name, "u"}});
        KRMX_REQUIRE(c, recorder.wait_caught_up());
        KRMX_CHECK_EQ(c, recorder.positions(), std::vector<Position>{2});
        KRMX_CHECK_FALSE(c, recorder.error());
    }
}

template <class Fixture>
void deep_json(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const auto refused = [&](const NewEvent& e) -> std::string {
        try {
            (void)store.append("s", ExpectedRevision::any(), e);
        } catch (const InvalidAppend& error) {
            return error.what();
        }
        return "(stored)";
    };
    // Far deeper than any stack holds when a serializer recurses once per level.
    NewEvent deep = event("deep");
    deep.payload = nested_arrays(100'000);
    KRMX_CHECK_CONTAINS(c, "payload of a \"deep\" event nests deeper than 128 levels", refused(deep));
    deep.payload = nested_arrays(krmx::detail::json_max_event_depth + 1);
    KRMX_CHECK_CONTAINS(c, "deeper than 128 levels", refused(deep));
    NewEvent deep_metadata = event("deep");
    deep_metadata.metadata = json{{"m", nested_arrays(100'000)}};
    KRMX_CHECK_CONTAINS(c, "metadata of a \"deep\" event nests deeper", refused(deep_metadata));
    deep_metadata.metadata = json{{"m", nested_arrays(krmx::detail::json_max_event_depth)}};
    KRMX_CHECK_CONTAINS(c, "deeper than 128 levels", refused(deep_metadata));
    KRMX_CHECK_EQ(c, store.head_position(), 1);

    // The deepest value accepted reads back as it went in.
    NewEvent deepest = event("deepest");
    deepest.payload = json{{"a", nested_arrays(krmx::detail::json_max_event_depth - 1)}};
    deepest.metadata = json{{"m", nested_arrays(krmx::detail::json_max_event_depth - 1)}};
    (void)store.append("s", ExpectedRevision::any(), deepest);
    const auto read = store.read_stream("s", 1);
    KRMX_REQUIRE_EQ(c, read.size(), 1);
    KRMX_CHECK(c, read[0].payload == deepest.payload);
    KRMX_CHECK(c, read[0].metadata == deepest.metadata);
}

template <class Fixture>
void numbers(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double infinity = std::numeric_limits<double>::infinity();
    for (const json& payload : {json(nan), json(infinity), json(-infinity), json{{"x", {1, 2, {{"y", nan}}}}},
                                json::array({0.5, -infinity})}) {
        const auto scope = c.info("appending the payload ", payload.dump());
        try {
            (void)store.append("s", ExpectedRevision::any(), event("odd", payload));
            KRMX_FAIL(c, "a payload with a number JSON cannot hold was stored");
        } catch (const InvalidAppend& e) {
            KRMX_CHECK_CONTAINS(c, "payload of a \"odd\" event holds a number that is not finite", e.what());
        }
    }
    NewEvent odd_metadata = event("odd");
    odd_metadata.metadata = json{{"at", nan}};
    KRMX_CHECK_THROWS_AS(c, InvalidAppend, store.append("s", ExpectedRevision::any(), odd_metadata));
    KRMX_CHECK_EQ(c, store.head_position(), 1);

    const json numbers{std::numeric_limits<double>::max(),
                       std::numeric_limits<double>::lowest(),
                       std::numeric_limits<double>::denorm_min(),
                       -0.0,
                       0.1,
                       std::numeric_limits<std::uint64_t>::max(),
                       std::numeric_limits<std::int64_t>::min(),
                       0};
    NewEvent finite = event("finite", json{{"numbers", numbers}});
    finite.metadata = json{{"numbers", numbers}};
    (void)store.append("s", ExpectedRevision::any(), finite);
    const auto read = store.read_stream("s", 1);
    KRMX_REQUIRE_EQ(c, read.size(), 1);
    KRMX_CHECK_EQ(c, read[0].payload, finite.payload);
    KRMX_CHECK_EQ(c, read[0].metadata, finite.metadata);
    KRMX_CHECK_EQ(c, read[0].payload->dump(), finite.payload->dump());
}

template <class Fixture>
void errors_quote_names(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const std::string stream = "tab\there \"q\" \x01";
    const std::string id = "id\nwith \\ and \u00e9";
    (void)store.append(stream, ExpectedRevision::no_stream(), event("a", {{"n", 1}}, id));
    try {
        (void)store.append(stream, ExpectedRevision::no_stream(), event("b"));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const WrongExpectedRevision& e) {
        KRMX_CHECK_CONTAINS(c, R"(stream "tab\there \"q\" \u0001" expected no stream)", e.what());
        KRMX_CHECK_EQ(c, e.stream(), stream);
    }
    try {
        (void)store.append("other", ExpectedRevision::any(), event("a", {{"n", 2}}, id));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const DuplicateEventId& e) {
        KRMX_CHECK_CONTAINS(c, "event id \"id\\nwith \\\\ and \u00e9\" is already stored", e.what());
        KRMX_CHECK_EQ(c, e.event_id(), id);
    }
    try {
        const std::vector<NewEvent> twice{event("a", nullptr, "x\ty"), event("b", nullptr, "x\ty")};
        (void)store.append(stream, ExpectedRevision::any(), twice);
        KRMX_FAIL(c, "the append should have failed");
    } catch (const InvalidAppend& e) {
        KRMX_CHECK_CONTAINS(c, R"(append to "tab\there \"q\" \u0001" repeats the event id "x\ty")", e.what());
    }
    try {
        (void)store.append(stream, ExpectedRevision::any(),
                           event("\"type\"", json{{"bad", std::string{"\xff"}}}));
        KRMX_FAIL(c, "the append should have failed");
    } catch (const InvalidAppend& e) {
        KRMX_CHECK_CONTAINS(c, R"(payload of a "\"type\"" event holds text that is not valid UTF-8)",
                            e.what());
    }
    KRMX_CHECK_EQ(c, store.head_position(), 1);
}

// ---- reads ----

template <class Fixture>
void read_stream_batches(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 10; ++i) {
        (void)store.append("s", ExpectedRevision::any(), event("tick", {{"n", i}}));
        (void)store.append("noise", ExpectedRevision::any(), event("tock"));
    }
    const auto batch = store.read_stream("s", 3, 4);
    KRMX_REQUIRE_EQ(c, batch.size(), 4);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        KRMX_CHECK_EQ(c, batch[i].stream, "s");
        KRMX_CHECK_EQ(c, batch[i].revision, 3 + i);
        KRMX_CHECK_EQ(c, batch[i].payload, json{{"n", 3 + i}});
    }
    KRMX_CHECK_EQ(c, store.read_stream("s", 8).size(), 2);
    KRMX_CHECK(c, store.read_stream("s", 10).empty());
    KRMX_CHECK(c, store.read_stream("missing").empty());
}

template <class Fixture>
void read_all_batches(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 25; ++i)
        (void)store.append("s" + std::to_string(i % 3), ExpectedRevision::any(), event("t"));
    std::vector<Position> seen;
    Position after = 0;
    int batches = 0;
    for (;;) {
        const auto batch = store.read_all(after, 7);
        KRMX_CHECK(c, batch.size() <= 7);
        if (batch.empty()) break;
        ++batches;
        for (const auto& e : batch) seen.push_back(e.position);
        after = batch.back().position;
        if (batches > 25) KRMX_FAIL(c, "read_all(after, 7) never came to an end");
    }
    KRMX_CHECK_EQ(c, batches, 4);
    KRMX_REQUIRE_EQ(c, seen.size(), 25);
    for (std::size_t i = 0; i < seen.size(); ++i) KRMX_CHECK_EQ(c, seen[i], i + 1);
    KRMX_CHECK(c, store.read_all(25).empty());
    KRMX_CHECK(c, store.read_all(100).empty());
}

template <class Fixture>
void filtered_far_apart(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    // 20 000 events; the rare type sits at positions 3, 9 000, 9 001 and 20 000 (stores may read in windows).
    std::vector<NewEvent> batch;
    for (int i = 1; i <= 20'000; ++i) {
        const bool rare = i == 3 || i == 9'000 || i == 9'001 || i == 20'000;
        batch.push_back(event(rare ? "rare" : "common"));
    }
    (void)store.append("s", ExpectedRevision::any(), batch);
    (void)store.append("other", ExpectedRevision::any(), event("rare"));
    const EventFilter rare{.streams = {"s"}, .types = {"rare"}};
    const auto all = store.read_all(0, read_unbounded, rare);
    KRMX_REQUIRE_EQ(c, all.size(), 4);
    KRMX_CHECK_EQ(c, all[0].position, 3);
    KRMX_CHECK_EQ(c, all[1].position, 9'000);
    KRMX_CHECK_EQ(c, all[2].position, 9'001);
    KRMX_CHECK_EQ(c, all[3].position, 20'000);
    std::vector<Position> seen;
    for (Position after = 0;;) {
        const auto some = store.read_all(after, 3, rare);
        KRMX_CHECK(c, some.size() <= 3);
        if (some.empty()) break;
        for (const auto& e : some) seen.push_back(e.position);
        after = some.back().position;
        if (seen.size() > 4) KRMX_FAIL(c, "read_all(after, 3, filter) never came to an end");
    }
    KRMX_CHECK_EQ(c, seen, std::vector<Position>{3, 9'000, 9'001, 20'000});
    KRMX_CHECK(c, store.read_all(20'000, read_unbounded, rare).empty());
    const auto anywhere = store.read_all(9'000, 2, EventFilter{.types = {"rare"}});
    KRMX_REQUIRE_EQ(c, anywhere.size(), 2);
    KRMX_CHECK_EQ(c, anywhere[0].position, 9'001);
    KRMX_CHECK_EQ(c, anywhere[1].position, 20'000);
    KRMX_CHECK_EQ(c, store.read_all(20'000, 5, EventFilter{.types = {"rare"}}).size(), 1);
}

template <class Fixture>
void for_each_event_streams(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    // 20 000 events in 7 streams, more than one window or batch of any store; "rare" at 3, 9 000, 9 001
    // and 20 000. Payloads and metadata vary so that a reused record must be filled in anew every time.
    std::vector<NewEvent> batch;
    for (int i = 1; i <= 20'000; ++i) {
        const bool rare = i == 3 || i == 9'000 || i == 9'001 || i == 20'000;
        NewEvent e = event(rare ? "rare" : "common", i % 5 == 0 ? json(nullptr) : json{{"n", i}});
        if (i % 7 == 0) e.metadata = json{{"i", i}};
        e.dispatcher = i % 2 == 0 ? "alice" : "bob";
        batch.push_back(std::move(e));
        if (batch.size() == 1000) {
            (void)store.append("s" + std::to_string(i % 7), ExpectedRevision::any(), batch);
            batch.clear();
        }
    }
    const auto expected = store.read_all(0, read_unbounded);
    KRMX_REQUIRE_EQ(c, expected.size(), 20'000);
    std::vector<RecordedEvent> seen;
    const auto count = for_each_event(store, 0, [&](RecordedEvent& e) { seen.push_back(std::move(e)); });
    KRMX_CHECK_EQ(c, count, 20'000);
    KRMX_REQUIRE_EQ(c, seen.size(), expected.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
        if (seen[i] != expected[i]) {
            KRMX_FAIL(c, "event " + std::to_string(i + 1) + " differs from read_all's: " + show(seen[i]) +
                             " against " + show(expected[i]));
        }
    }

    std::vector<Position> positions;
    const auto collect = [&](RecordedEvent& e) {
        positions.push_back(e.position);
    };
    KRMX_CHECK_EQ(c, for_each_event(store, 19'990, collect), 10);
    KRMX_CHECK_EQ(c, positions,
                  std::vector<Position>{19'991, 19'992, 19'993, 19'994, 19'995, 19'996, 19'997, 19'998,
                                        19'999, 20'000});
    positions.clear();
    KRMX_CHECK_EQ(c, for_each_event(store, 0, collect, EventFilter{.types = {"rare"}}), 4);
    KRMX_CHECK_EQ(c, positions, std::vector<Position>{3, 9'000, 9'001, 20'000});
    positions.clear();
    KRMX_CHECK_EQ(c, for_each_event(store, 3, collect, EventFilter{.types = {"rare"}}, 2), 2);
    KRMX_CHECK_EQ(c, positions, std::vector<Position>{9'000, 9'001});
    positions.clear();
    KRMX_CHECK_EQ(c, for_each_event(store, 100, collect, {}, 3), 3);
    KRMX_CHECK_EQ(c, positions, std::vector<Position>{101, 102, 103});
    positions.clear();
    const EventFilter stream_and_type{.streams = {"s3", "none"}, .types = {"rare", "common"}};
    KRMX_CHECK_EQ(c, for_each_event(store, 17'000, collect, stream_and_type),
                  store.read_all(17'000, read_unbounded, stream_and_type).size());
    KRMX_CHECK_EQ(c, positions, positions_of(store.read_all(17'000, read_unbounded, stream_and_type)));
    KRMX_CHECK_EQ(c, for_each_event(store, 20'000, collect), 0);
    KRMX_CHECK_EQ(c, for_each_event(store, 0, collect, EventFilter{.streams = {"none"}}), 0);
    KRMX_CHECK_EQ(c, for_each_event(store, 0, collect, {}, 0), 0);
}

template <class Fixture>
void filters_match_exactly(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    const std::vector<std::string> names{"it's", "back\\slash",      "\"quoted\"", "{braces},commas",
                                         "abc",  "\u00fcn\u00efcode"};
    for (const auto& name : names) (void)store.append(name, ExpectedRevision::any(), event(name + "-type"));
    const std::string with_nul{"abc\0def", 7};
    const std::vector<std::pair<EventFilter, std::vector<Position>>> cases{
        {EventFilter{.streams = {"it's", "back\\slash"}}, {1, 2}},
        {EventFilter{.streams = {"\"quoted\"", "{braces},commas"}}, {3, 4}},
        {EventFilter{.types = {"it's-type", "\u00fcn\u00efcode-type"}}, {1, 6}},
        {EventFilter{.streams = {with_nul}}, {}},
        {EventFilter{.types = {with_nul + "-type"}}, {}},
        {EventFilter{.streams = {with_nul, "abc"}}, {5}},
    };
    check_filters(c, store, cases);
}

template <class Fixture>
void for_each_event_callee_throws(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 30);
    struct Enough {};
    for (int round = 0; round < 3; ++round) {
        const auto scope = c.info("reading in round ", round);
        std::vector<Position> seen;
        KRMX_CHECK_THROWS_AS(c, Enough, for_each_event(store, 0, [&](const RecordedEvent& e) {
                                 seen.push_back(e.position);
                                 if (e.position == 12) throw Enough{};
                             }));
        KRMX_CHECK_EQ(c, seen.size(), 12);
        // An exception of the store's own kinds passes through unchanged too (never taken for its own).
        KRMX_CHECK_THROWS_AS(
            c, StoreError, for_each_event(store, 0, [](const RecordedEvent&) { throw StoreError("mine"); }));
        (void)store.append("s", ExpectedRevision::any(), event("tick", {{"n", 30 + round}}));
        KRMX_CHECK_EQ(c, store.read_all(0).size(), 31 + static_cast<std::size_t>(round));
        KRMX_CHECK_EQ(c, for_each_event(store, 0, [](const RecordedEvent&) {}),
                      31 + static_cast<std::size_t>(round));
    }
}

template <class Fixture>
void for_each_event_callee_uses_store(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    std::vector<std::size_t> reads;
    KRMX_CHECK_EQ(c,
                  for_each_event(
                      store, 0,
                      [&](const RecordedEvent& e) {
                          reads.push_back(store.read_all(0, read_unbounded).size());
                          (void)store.append("copy-of-" + e.stream, ExpectedRevision::any(), event("copied"));
                      },
                      EventFilter{.streams = {"s"}}),
                  5);
    KRMX_CHECK_EQ(c, reads, std::vector<std::size_t>{5, 6, 7, 8, 9});
    KRMX_CHECK_EQ(c, store.head_position(), 10);
}

template <class Fixture>
void reads_filter(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 12; ++i) {
        (void)store.append("s" + std::to_string(i % 3), ExpectedRevision::any(),
                           event(i % 2 == 0 ? "even" : "odd"));
    }
    const auto by_stream = store.read_all(0, read_unbounded, EventFilter{.streams = {"s1"}});
    KRMX_CHECK_EQ(c, positions_of(by_stream), std::vector<Position>{2, 5, 8, 11});
    const auto by_streams = store.read_all(4, read_unbounded, EventFilter{.streams = {"s0", "s2"}});
    KRMX_CHECK_EQ(c, positions_of(by_streams), std::vector<Position>{6, 7, 9, 10, 12});
    const auto by_type = store.read_all(0, 3, EventFilter{.types = {"odd"}});
    KRMX_CHECK_EQ(c, positions_of(by_type), std::vector<Position>{2, 4, 6});
    const auto both = store.read_all(0, read_unbounded, EventFilter{.streams = {"s0"}, .types = {"odd"}});
    KRMX_CHECK_EQ(c, positions_of(both), std::vector<Position>{4, 10});
    KRMX_CHECK(c, store.read_all(0, read_unbounded, EventFilter{.streams = {"none"}}).empty());
}

// ---- subscriptions ----

template <class Fixture>
void subscription_from_start(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    SubscriptionRecorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    KRMX_REQUIRE(c, recorder.wait_caught_up());
    KRMX_CHECK(c, recorder.caught_up_after() >= 5);
    append_ticks(store, "s", 5, 5);
    KRMX_REQUIRE(c, recorder.wait_for_events(10));
    const auto events = recorder.events();
    KRMX_REQUIRE_EQ(c, events.size(), 10);
    for (std::size_t i = 0; i < events.size(); ++i) {
        KRMX_CHECK_EQ(c, events[i].position, i + 1);
        KRMX_CHECK_EQ(c, events[i].payload, json{{"n", i}});
    }
    KRMX_CHECK_EQ(c, recorder.caught_up(), 1);
    KRMX_CHECK_FALSE(c, recorder.error());
}

template <class Fixture>
void subscription_on_empty_store(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    SubscriptionRecorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    KRMX_REQUIRE(c, recorder.wait_caught_up());
    KRMX_CHECK_EQ(c, recorder.caught_up_after(), 0);
    (void)store.append("s", ExpectedRevision::any(), event("first"));
    KRMX_REQUIRE(c, recorder.wait_for_events(1));
    KRMX_CHECK_EQ(c, recorder.caught_up(), 1);
}

template <class Fixture>
void subscription_after_and_end(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 6);
    SubscriptionRecorder after_four;
    SubscriptionRecorder from_end;
    auto a = store.subscribe(SubscribeFrom::after(4), after_four.handlers());
    auto b = store.subscribe(SubscribeFrom::end(), from_end.handlers());
    KRMX_REQUIRE(c, after_four.wait_caught_up());
    KRMX_REQUIRE(c, from_end.wait_caught_up());
    KRMX_CHECK_EQ(c, from_end.caught_up_after(), 0);
    append_ticks(store, "s", 2, 6);
    KRMX_REQUIRE(c, after_four.wait_for_events(4));
    KRMX_REQUIRE(c, from_end.wait_for_events(2));
    KRMX_CHECK_EQ(c, after_four.positions(), std::vector<Position>{5, 6, 7, 8});
    KRMX_CHECK_EQ(c, from_end.positions(), std::vector<Position>{7, 8});
}

template <class Fixture>
void subscription_filters(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("a", ExpectedRevision::any(), event("x"));
    (void)store.append("b", ExpectedRevision::any(), event("x"));
    (void)store.append("a", ExpectedRevision::any(), event("y"));
    SubscriptionRecorder recorder;
    auto subscription =
        store.subscribe(SubscribeFrom::start(), recorder.handlers(), EventFilter{.streams = {"a"}});
    KRMX_REQUIRE(c, recorder.wait_caught_up());
    (void)store.append("b", ExpectedRevision::any(), event("x"));
    (void)store.append("a", ExpectedRevision::any(), event("z"));
    KRMX_REQUIRE(c, recorder.wait_for_events(3));
    KRMX_CHECK_EQ(c, recorder.positions(), std::vector<Position>{1, 3, 5});
}

template <class Fixture>
void subscription_cancelled(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    SubscriptionRecorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    KRMX_REQUIRE(c, recorder.wait_for_events(1));
    subscription.cancel();
    KRMX_CHECK_FALSE(c, subscription.active());
    append_ticks(store, "s", 3);
    // A fresh subscription sees the new events, so the old one had every chance to see them too.
    SubscriptionRecorder witness;
    auto other = store.subscribe(SubscribeFrom::start(), witness.handlers());
    KRMX_REQUIRE(c, witness.wait_for_events(4));
    KRMX_CHECK_EQ(c, recorder.events().size(), 1);
}

template <class Fixture>
void subscription_cancelled_from_callback(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    std::atomic<int> seen{0};
    Subscription subscription;
    std::mutex handle_mutex;
    std::atomic<bool> cancelled{false};
    {
        std::lock_guard lock{handle_mutex};
        subscription = store.subscribe(SubscribeFrom::start(), {.on_event = [&](const RecordedEvent&) {
                                           if (++seen == 2) {
                                               std::lock_guard inner{handle_mutex};
                                               subscription.cancel();
                                               cancelled = true;
                                           }
                                       }});
    }
    for (int i = 0; i < 200 && !cancelled; ++i) std::this_thread::sleep_for(std::chrono::milliseconds{10});
    KRMX_REQUIRE(c, cancelled.load());
    append_ticks(store, "s", 2);
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    KRMX_CHECK_EQ(c, seen.load(), 2);
}

template <class Fixture>
void subscriber_throws(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 3);
    SubscriptionRecorder recorder;
    auto handlers = recorder.handlers();
    auto record = handlers.on_event;
    handlers.on_event = [record](const RecordedEvent& e) {
        if (e.position == 2) throw std::runtime_error("subscriber broke");
        record(e);
    };
    auto subscription = store.subscribe(SubscribeFrom::start(), handlers);
    KRMX_REQUIRE(c, recorder.wait_error());
    KRMX_CHECK_EQ(c, error_text(recorder.error()), "subscriber broke");
    append_ticks(store, "s", 1);
    KRMX_CHECK_EQ(c, recorder.positions(), std::vector<Position>{1});
    KRMX_CHECK_EQ(c, recorder.caught_up(), 0);
}

template <class Fixture>
void error_handler_throws(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    if constexpr (!requires { store.statistics().error_handler_failures; }) {
        c.skip("the store has no statistics() with error_handler_failures");
    } else {
        KRMX_CHECK_EQ(c, store.statistics().error_handler_failures, 0);
        append_ticks(store, "s", 2);
        std::atomic<int> told{0};
        auto subscription = store.subscribe(
            SubscribeFrom::start(),
            {.on_event = [](const RecordedEvent&) { throw std::runtime_error("subscriber broke"); },
             .on_error =
                 [&](std::exception_ptr) {
                     ++told;
                     throw std::runtime_error("and so did its error handler");
                 }});
        for (int i = 0; i < 2000 && store.statistics().error_handler_failures == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        KRMX_CHECK_EQ(c, told.load(), 1);
        KRMX_CHECK_EQ(c, store.statistics().error_handler_failures, 1);
    }
}

template <class Fixture>
void concurrent_appends(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("start"));
    constexpr int threads = 4;
    constexpr int rounds = 20;
    for (int round = 0; round < rounds; ++round) {
        const auto scope = c.info("racing in round ", round);
        std::atomic<int> wins{0};
        std::atomic<int> losses{0};
        std::vector<std::thread> racers;
        for (int t = 0; t < threads; ++t) {
            racers.emplace_back([&, t] {
                try {
                    (void)store.append("s", ExpectedRevision::exact(static_cast<Revision>(round)),
                                       event("move", {{"by", t}}));
                    ++wins;
                } catch (const WrongExpectedRevision& e) {
                    if (e.actual() == Revision(round + 1)) ++losses;
                } catch (...) {
                    // neither a win nor the loss the contract promises: counted as neither
                }
            });
        }
        for (auto& racer : racers) racer.join();
        KRMX_CHECK_EQ(c, wins.load(), 1);
        KRMX_CHECK_EQ(c, losses.load(), threads - 1);
    }
    KRMX_CHECK_EQ(c, store.stream_revision("s"), rounds);
    KRMX_CHECK_EQ(c, store.head_position(), rounds + 1);
}

template <class Fixture>
void subscription_outlives_store(ContractChecks& c) {
    Fixture fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 3);
    SubscriptionRecorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    KRMX_REQUIRE(c, recorder.wait_for_events(3));
    fixture.close();  // stops delivery first, then closes
    subscription.cancel();
    KRMX_CHECK_EQ(c, recorder.events().size(), 3);
}

template <class Fixture>
inline constexpr contract::Case cases[] = {
    {"an empty store is at position 0 and has no streams", &empty_store<Fixture>},
    {"stored events survive a restart, and positions continue densely", &survives_restart<Fixture>},
    {"appended events get dense global positions and 0-based stream revisions", &dense_positions<Fixture>},
    {"a stored event reads back with every field intact", &fields_intact<Fixture>},
    {"the store fills in a missing event id, timestamp and metadata", &fills_in_defaults<Fixture>},
    {"an append that expects no stream fails once the stream exists and reports its revision",
     &expects_no_stream<Fixture>},
    {"an append that expects the stream to exist fails on a new stream", &expects_stream_exists<Fixture>},
    {"an append that expects revision n succeeds only when the stream is at n",
     &expects_exact_revision<Fixture>},
    {"a failed append writes none of its events: on a wrong expected revision",
     &failed_append_wrong_revision<Fixture>},
    {"a failed append writes none of its events: on an invalid event in the middle",
     &failed_append_invalid_event<Fixture>},
    {"a failed append writes none of its events: on an id stored for another event in the middle",
     &failed_append_stored_id<Fixture>},
    {"a repeated append with the same event ids writes nothing twice", &repeated_append<Fixture>},
    {"reusing an event id for a different event is an error: with other content",
     &id_reused_other_content<Fixture>},
    {"reusing an event id for a different event is an error: in another stream",
     &id_reused_other_stream<Fixture>},
    {"reusing an event id for a different event is an error: at another revision",
     &id_reused_other_revision<Fixture>},
    {"reusing an event id for a different event is an error: with another dispatcher",
     &id_reused_other_dispatcher<Fixture>},
    {"a partly repeated append is an error and writes nothing", &partly_repeated<Fixture>},
    {"bad input gets a clear error and leaves the store unchanged", &bad_input<Fixture>},
    {"names of up to 1024 bytes are stored and read back, longer ones are refused unwritten",
     &longest_names<Fixture>},
    {"names that are not valid UTF-8 or hold a NUL are refused unwritten, shown escaped",
     &bad_names<Fixture>},
    {"reads and filters of a name no store can hold find nothing, and never fail",
     &impossible_names_find_nothing<Fixture>},
    {"payloads and metadata nested too deeply are refused unwritten, without recursion", &deep_json<Fixture>},
    {"NaN and infinity are refused unwritten, and every finite number reads back as it went in",
     &numbers<Fixture>},
    {"errors show the names they mention quoted and escaped, never cut short", &errors_quote_names<Fixture>},
    {"reading a stream starts at a revision and stops at the batch size", &read_stream_batches<Fixture>},
    {"reading all streams after a position comes in bounded batches in position order",
     &read_all_batches<Fixture>},
    {"a filtered read finds matches far apart, in order, in bounded batches", &filtered_far_apart<Fixture>},
    {"for_each_event streams every event in order, filtered and bounded like read_all",
     &for_each_event_streams<Fixture>},
    {"filters match names with quotes, backslashes and NUL exactly, never by a prefix",
     &filters_match_exactly<Fixture>},
    {"an exception from for_each_event's callee stops the read and leaves the store usable",
     &for_each_event_callee_throws<Fixture>},
    {"for_each_event's callee may use the store it reads", &for_each_event_callee_uses_store<Fixture>},
    {"reads filter by stream and by type", &reads_filter<Fixture>},
    {"a subscription from the start delivers the stored events, then caught_up, then live events",
     &subscription_from_start<Fixture>},
    {"a subscription on an empty store still signals caught_up", &subscription_on_empty_store<Fixture>},
    {"a subscription after a position starts with the next one and one from the end sees only new events",
     &subscription_after_and_end<Fixture>},
    {"a subscription filters by stream and type", &subscription_filters<Fixture>},
    {"a cancelled subscription receives nothing more", &subscription_cancelled<Fixture>},
    {"a subscription can be cancelled from inside its own callback",
     &subscription_cancelled_from_callback<Fixture>},
    {"a subscriber that throws is stopped and told why", &subscriber_throws<Fixture>},
    {"an on_error handler that throws is counted in the store's statistics", &error_handler_throws<Fixture>},
    {"concurrent appends expecting the same revision: exactly one wins each round",
     &concurrent_appends<Fixture>},
    {"a subscription handle that outlives its store is harmless", &subscription_outlives_store<Fixture>},
};

}  // namespace detail::event_store_cases

/// Runs the event store contract on fresh fixtures of `Fixture` (every case makes its own), one case after
/// the other; the cases whose name contains `options.filter` only, when it is set.
template <class Fixture>
[[nodiscard]] ContractReport event_store_contract(const ContractOptions& options = {}) {
    if constexpr (EventStoreFixture<Fixture>) {
        return detail::contract::Runner::run("event store contract",
                                             detail::contract::subject_name<Fixture>(),
                                             detail::event_store_cases::cases<Fixture>, options);
    } else {
        static_assert(
            std::default_initializable<Fixture>,
            "krmx::testing::event_store_contract<Fixture>: the fixture must be default-constructible "
            "(every case makes a fresh one, with a store on a place of its own)");
        static_assert(
            detail::opens_lvalue<Fixture>,
            "krmx::testing::event_store_contract<Fixture>: the fixture needs `Store& open()`, giving "
            "its store by reference (opened again after close())");
        static_assert(detail::restarts<Fixture>,
                      "krmx::testing::event_store_contract<Fixture>: the fixture needs `reopen()` (a restart "
                      "on the same data) and `close()`");
        static_assert(!detail::opens_lvalue<Fixture> || detail::opens_event_store<Fixture>,
                      "krmx::testing::event_store_contract<Fixture>: what `open()` gives is not a "
                      "krmx::EventStore (see the concept in krmx/store/event_store.hpp)");
        return {};
    }
}

}  // namespace krmx::testing
