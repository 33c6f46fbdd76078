// The event store contract, written once and run against every store (see EventStoreFixtures).

#include <atomic>
#include <chrono>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "krmx/core/detail/json_scan.hpp"
#include "krmx/store/names.hpp"
#include "store_test_support.hpp"

using krmx::AppendResult;
using krmx::EventFilter;
using krmx::ExpectedRevision;
using krmx::NewEvent;
using krmx::Position;
using krmx::RecordedEvent;
using krmx::SubscribeFrom;
using krmx::testing::event;
using krmx::testing::EventStoreFixtures;
using krmx::testing::random_name;
using krmx::testing::Recorder;
using nlohmann::json;

namespace {

std::vector<Position> positions_of(const std::vector<RecordedEvent>& events) {
    std::vector<Position> result;
    for (const auto& e : events) result.push_back(e.position);
    return result;
}

// Each filter of `cases` finds the positions beside it, read in batches and streamed alike.
template <class Store>
void check_filters(const Store& store,
                   const std::vector<std::pair<EventFilter, std::vector<Position>>>& cases) {
    for (const auto& [filter, expected] : cases) {
        CAPTURE(filter.streams, filter.types);
        CHECK(positions_of(store.read_all(0, krmx::read_unbounded, filter)) == expected);
        std::vector<Position> streamed;
        (void)krmx::for_each_event(
            store, 0, [&](const RecordedEvent& e) { streamed.push_back(e.position); }, filter);
        CHECK(streamed == expected);
    }
}

// The parts of an event that are names, each set to `name` in turn on an otherwise good append.
enum class NamePart { stream, id, type, dispatcher };
constexpr NamePart name_parts[] = {NamePart::stream, NamePart::id, NamePart::type, NamePart::dispatcher};

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
    } catch (const krmx::InvalidAppend& error) {
        return std::string{error.what()};
    }
}

// A value of `depth` nested arrays (0: a number), built without recursion and without copying a level (a
// copy of a deep value recurses).
json nested_arrays(int depth) {
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

}  // namespace

TEMPLATE_LIST_TEST_CASE("an empty store is at position 0 and has no streams", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    CHECK(store.head_position() == 0);
    CHECK(store.read_all().empty());
    CHECK(store.read_stream("nothing").empty());
    CHECK_FALSE(store.stream_revision("nothing").has_value());
}

TEMPLATE_LIST_TEST_CASE("stored events survive a restart, and positions continue densely",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& before = fixture.open();
    (void)before.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1"));
    (void)before.append("t", ExpectedRevision::no_stream(), event("b", {{"n", 2}}));
    fixture.reopen();
    auto& store = fixture.open();
    CHECK(store.head_position() == 2);
    CHECK(store.stream_revision("s") == 0);
    const auto all = store.read_all();
    REQUIRE(all.size() == 2);
    CHECK(all[0].id == "id-1");
    CHECK(all[1].payload == json{{"n", 2}});
    CHECK(store.append("s", ExpectedRevision::exact(0), event("c")) == AppendResult{3, 3, 1, 1});
    // An idempotent repeat is recognised across a restart too.
    CHECK(store.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1")).already_stored);
}

TEMPLATE_LIST_TEST_CASE("appended events get dense global positions and 0-based stream revisions",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    const std::vector<NewEvent> two{event("a"), event("b")};
    const AppendResult first = store.append("alpha", ExpectedRevision::no_stream(), two);
    CHECK(first == AppendResult{1, 2, 0, 1, false});
    CHECK(store.append("beta", ExpectedRevision::any(), event("c")) == AppendResult{3, 3, 0, 0, false});
    CHECK(store.append("alpha", ExpectedRevision::exact(1), event("d")) == AppendResult{4, 4, 2, 2, false});

    CHECK(store.head_position() == 4);
    CHECK(store.stream_revision("alpha") == 2);
    CHECK(store.stream_revision("beta") == 0);
    const auto all = store.read_all();
    REQUIRE(all.size() == 4);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == i + 1);
    CHECK(all[3].stream == "alpha");
    CHECK(all[3].revision == 2);
    CHECK(all[3].type == "d");
}

TEMPLATE_LIST_TEST_CASE("a stored event reads back with every field intact", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
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
    REQUIRE(all.size() == 3);
    const RecordedEvent& read = all[0];
    CHECK(read.position == 1);
    CHECK(read.stream == "game/1");
    CHECK(read.revision == 0);
    CHECK(read.id == full.id);
    CHECK(read.type == "claim");
    CHECK(read.payload == full.payload);
    CHECK(read.dispatcher == "alice");
    CHECK(read.timestamp == full.timestamp);
    CHECK(read.metadata == full.metadata);
    CHECK_FALSE(all[1].payload.has_value());
    REQUIRE(all[2].payload.has_value());
    CHECK(all[2].payload->is_null());
    CHECK(store.read_stream("game/1") == all);
}

TEMPLATE_LIST_TEST_CASE("the store fills in a missing event id, timestamp and metadata", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    const auto before = std::chrono::system_clock::now();
    NewEvent bare = event("x");
    bare.metadata = nullptr;
    const std::vector<NewEvent> events{bare, event("y"), event("z")};
    (void)store.append("s", ExpectedRevision::any(), events);
    const auto after = std::chrono::system_clock::now();

    const auto all = store.read_all();
    REQUIRE(all.size() == 3);
    std::set<std::string> ids;
    for (const auto& e : all) {
        CHECK(e.id.size() == 36);
        ids.insert(e.id);
        CHECK(e.timestamp >= before);
        CHECK(e.timestamp <= after);
        CHECK(e.metadata == json::object());
    }
    CHECK(ids.size() == 3);
}

TEMPLATE_LIST_TEST_CASE(
    "an append that expects no stream fails once the stream exists and reports its revision",
    "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("first"));
    try {
        (void)store.append("s", ExpectedRevision::no_stream(), event("second"));
        FAIL("the append should have failed");
    } catch (const krmx::WrongExpectedRevision& e) {
        CHECK(e.stream() == "s");
        CHECK(e.expected() == ExpectedRevision::no_stream());
        CHECK(e.actual() == 0);
        CHECK(std::string{e.what()}.find("revision 0") != std::string::npos);
    }
    CHECK(store.head_position() == 1);
}

TEMPLATE_LIST_TEST_CASE("an append that expects the stream to exist fails on a new stream",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    try {
        (void)store.append("s", ExpectedRevision::stream_exists(), event("first"));
        FAIL("the append should have failed");
    } catch (const krmx::WrongExpectedRevision& e) {
        CHECK_FALSE(e.actual().has_value());
    }
    CHECK(store.head_position() == 0);
    (void)store.append("s", ExpectedRevision::any(), event("first"));
    CHECK(store.append("s", ExpectedRevision::stream_exists(), event("second")).last_revision == 1);
}

TEMPLATE_LIST_TEST_CASE("an append that expects revision n succeeds only when the stream is at n",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::exact(0), event("a")), krmx::WrongExpectedRevision);
    (void)store.append("s", ExpectedRevision::no_stream(), event("a"));
    CHECK(store.append("s", ExpectedRevision::exact(0), event("b")).first_revision == 1);
    try {
        (void)store.append("s", ExpectedRevision::exact(0), event("c"));
        FAIL("the append should have failed");
    } catch (const krmx::WrongExpectedRevision& e) {
        CHECK(e.actual() == 1);
    }
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::exact(5), event("c")), krmx::WrongExpectedRevision);
    CHECK(store.stream_revision("s") == 1);
    CHECK(store.head_position() == 2);
}

TEMPLATE_LIST_TEST_CASE("a failed append writes none of its events", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a", {{"n", 1}}, "id-a"));

    SECTION("on a wrong expected revision") {
        const std::vector<NewEvent> events{event("b"), event("c")};
        CHECK_THROWS_AS(store.append("s", ExpectedRevision::no_stream(), events),
                        krmx::WrongExpectedRevision);
    }
    SECTION("on an invalid event in the middle") {
        const std::vector<NewEvent> events{event("b"), event(""), event("c")};
        CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), events), krmx::InvalidAppend);
    }
    SECTION("on an id stored for another event in the middle") {
        const std::vector<NewEvent> events{event("b", nullptr, "id-b"), event("x", {{"n", 2}}, "id-a")};
        CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), events), krmx::DuplicateEventId);
    }
    CHECK(store.head_position() == 1);
    CHECK(store.read_all().size() == 1);
    CHECK(store.stream_revision("s") == 0);
    // The failed append left nothing behind that blocks the next one.
    CHECK(store.append("s", ExpectedRevision::exact(0), event("b", nullptr, "id-b")) ==
          AppendResult{2, 2, 1, 1});
}

TEMPLATE_LIST_TEST_CASE("a repeated append with the same event ids writes nothing twice", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("other", ExpectedRevision::any(), event("noise"));
    const std::vector<NewEvent> events{event("a", {{"n", 1}}, "id-1"), event("b", {{"n", 2}}, "id-2")};
    const AppendResult original = store.append("s", ExpectedRevision::no_stream(), events);
    CHECK(original == AppendResult{2, 3, 0, 1, false});

    AppendResult expected_repeat = original;
    expected_repeat.already_stored = true;
    CHECK(store.append("s", ExpectedRevision::no_stream(), events) == expected_repeat);
    CHECK(store.append("s", ExpectedRevision::any(), events) == expected_repeat);
    CHECK(store.append("s", ExpectedRevision::stream_exists(), events) == expected_repeat);
    // The tail of the original append on its own is a repeat too.
    CHECK(store.append("s", ExpectedRevision::exact(0), events[1]) == AppendResult{3, 3, 1, 1, true});
    // A repeat after more events were appended still finds the originals.
    (void)store.append("s", ExpectedRevision::any(), event("c"));
    CHECK(store.append("s", ExpectedRevision::no_stream(), events) == expected_repeat);

    CHECK(store.head_position() == 4);
    CHECK(store.read_stream("s").size() == 3);
}

TEMPLATE_LIST_TEST_CASE("reusing an event id for a different event is an error", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("a", {{"n", 1}}, "id-1"));

    SECTION("with other content") {
        try {
            (void)store.append("s", ExpectedRevision::any(), event("a", {{"n", 99}}, "id-1"));
            FAIL("the append should have failed");
        } catch (const krmx::DuplicateEventId& e) {
            CHECK(e.event_id() == "id-1");
            CHECK(e.stored_at() == 1);
        }
    }
    SECTION("in another stream") {
        CHECK_THROWS_AS(store.append("t", ExpectedRevision::any(), event("a", {{"n", 1}}, "id-1")),
                        krmx::DuplicateEventId);
    }
    SECTION("at another revision") {
        CHECK_THROWS_AS(store.append("s", ExpectedRevision::exact(3), event("a", {{"n", 1}}, "id-1")),
                        krmx::DuplicateEventId);
    }
    SECTION("with another dispatcher") {
        NewEvent changed = event("a", {{"n", 1}}, "id-1");
        changed.dispatcher = "mallory";
        CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), changed), krmx::DuplicateEventId);
    }
    CHECK(store.head_position() == 1);
}

TEMPLATE_LIST_TEST_CASE("a partly repeated append is an error and writes nothing", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("a", nullptr, "id-1"));
    const std::vector<NewEvent> stored_then_new{event("a", nullptr, "id-1"), event("b", nullptr, "id-2")};
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), stored_then_new), krmx::DuplicateEventId);
    const std::vector<NewEvent> new_then_stored{event("b", nullptr, "id-2"), event("a", nullptr, "id-1")};
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), new_then_stored), krmx::DuplicateEventId);
    CHECK(store.head_position() == 1);
    CHECK(store.read_all().size() == 1);
}

TEMPLATE_LIST_TEST_CASE("bad input gets a clear error and leaves the store unchanged", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const auto check_refused = [&](std::string_view stream, const std::vector<NewEvent>& events,
                                   const std::string& mentions) {
        try {
            (void)store.append(stream, ExpectedRevision::any(), events);
            FAIL("the append should have failed");
        } catch (const krmx::InvalidAppend& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains(mentions));
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

    CHECK(store.head_position() == 1);
    CHECK(store.read_all().size() == 1);
    CHECK(store.stream_revision("s") == 0);
}

TEMPLATE_LIST_TEST_CASE(
    "names of up to 1024 bytes are stored and read back, longer ones are refused unwritten",
    "[store][contract][names]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    const std::string stream = random_name(krmx::max_name_bytes, 1);
    NewEvent longest =
        event(random_name(krmx::max_name_bytes, 2), {{"n", 1}}, random_name(krmx::max_name_bytes, 3));
    longest.dispatcher = random_name(krmx::max_name_bytes, 4);
    CHECK(store.append(stream, ExpectedRevision::no_stream(), longest) == AppendResult{1, 1, 0, 0});
    const auto read = store.read_stream(stream);
    REQUIRE(read.size() == 1);
    CHECK(read[0].stream == stream);
    CHECK(read[0].id == longest.id);
    CHECK(read[0].type == longest.type);
    CHECK(read[0].dispatcher == longest.dispatcher);
    CHECK(store.stream_revision(stream) == 0);
    CHECK(store.read_all(0, krmx::read_unbounded,
                         EventFilter{.streams = {stream}, .types = {longest.type}}) == read);

    for (const NamePart part : name_parts) {
        for (const std::size_t size : {krmx::max_name_bytes + 1, std::size_t{3000}}) {
            CAPTURE(static_cast<int>(part), size);
            const auto refused = append_named(store, part, random_name(size, 5));
            REQUIRE(refused.has_value());
            CHECK_THAT(*refused, Catch::Matchers::Contains(std::to_string(size) + " bytes long") &&
                                     Catch::Matchers::Contains("at most 1024 bytes"));
        }
    }
    CHECK(store.head_position() == 1);
    CHECK(store.read_all().size() == 1);
    CHECK_FALSE(store.stream_revision("named-stream").has_value());
}

TEMPLATE_LIST_TEST_CASE("names that are not valid UTF-8 or hold a NUL are refused unwritten, shown escaped",
                        "[store][contract][names]", EventStoreFixtures) {
    TestType fixture;
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
            CAPTURE(static_cast<int>(part), shown);
            const auto refused = append_named(store, part, name);
            REQUIRE(refused.has_value());
            CHECK_THAT(*refused, Catch::Matchers::Contains(shown));
        }
    }
    CHECK(store.head_position() == 1);
    CHECK(store.read_all().size() == 1);
    CHECK_FALSE(store.stream_revision("named-stream").has_value());
    // Empty: a stream and a type need a name, an id (the store makes one) and a dispatcher do not.
    CHECK(append_named(store, NamePart::stream, "").has_value());
    CHECK(append_named(store, NamePart::type, "").has_value());
    CHECK_FALSE(append_named(store, NamePart::id, "").has_value());
    CHECK_FALSE(append_named(store, NamePart::dispatcher, "").has_value());
    CHECK(store.head_position() == 3);
}

TEMPLATE_LIST_TEST_CASE("reads and filters of a name no store can hold find nothing, and never fail",
                        "[store][contract][names]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("t"));
    (void)store.append("u", ExpectedRevision::any(), event("t"));
    for (const std::string& name : {random_name(3000, 6), random_name(krmx::max_name_bytes + 1, 7),
                                    std::string{"\xff"}, std::string{"s\xc3"}, std::string{"s\0", 2}}) {
        CAPTURE(name.size());
        CHECK(store.read_stream(name).empty());
        CHECK_FALSE(store.stream_revision(name).has_value());
        const std::vector<std::pair<EventFilter, std::vector<Position>>> cases{
            {EventFilter{.streams = {name}}, {}},
            {EventFilter{.types = {name}}, {}},
            {EventFilter{.streams = {name, "u"}}, {2}},
            {EventFilter{.types = {"t", name}}, {1, 2}},
            {EventFilter{.streams = {"s"}, .types = {name}}, {}},
        };
        check_filters(store, cases);
        Recorder recorder;
        auto subscription =
            store.subscribe(SubscribeFrom::start(), recorder.handlers(), EventFilter{.streams = {name, "u"}});
        REQUIRE(recorder.wait_caught_up());
        CHECK(recorder.positions() == std::vector<Position>{2});
        CHECK_FALSE(recorder.error());
    }
}

TEMPLATE_LIST_TEST_CASE("payloads and metadata nested too deeply are refused unwritten, without recursion",
                        "[store][contract][json]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const auto refused = [&](const NewEvent& e) -> std::string {
        try {
            (void)store.append("s", ExpectedRevision::any(), e);
        } catch (const krmx::InvalidAppend& error) {
            return error.what();
        }
        return "(stored)";
    };
    // Far deeper than any stack holds when a serializer recurses once per level.
    NewEvent deep = event("deep");
    deep.payload = nested_arrays(100'000);
    CHECK_THAT(refused(deep),
               Catch::Matchers::Contains("payload of a \"deep\" event nests deeper than 128 levels"));
    deep.payload = nested_arrays(krmx::detail::json_max_event_depth + 1);
    CHECK_THAT(refused(deep), Catch::Matchers::Contains("deeper than 128 levels"));
    NewEvent deep_metadata = event("deep");
    deep_metadata.metadata = json{{"m", nested_arrays(100'000)}};
    CHECK_THAT(refused(deep_metadata),
               Catch::Matchers::Contains("metadata of a \"deep\" event nests deeper"));
    deep_metadata.metadata = json{{"m", nested_arrays(krmx::detail::json_max_event_depth)}};
    CHECK_THAT(refused(deep_metadata), Catch::Matchers::Contains("deeper than 128 levels"));
    CHECK(store.head_position() == 1);

    // The deepest value accepted reads back as it went in.
    NewEvent deepest = event("deepest");
    deepest.payload = json{{"a", nested_arrays(krmx::detail::json_max_event_depth - 1)}};
    deepest.metadata = json{{"m", nested_arrays(krmx::detail::json_max_event_depth - 1)}};
    (void)store.append("s", ExpectedRevision::any(), deepest);
    const auto read = store.read_stream("s", 1);
    REQUIRE(read.size() == 1);
    CHECK(read[0].payload == deepest.payload);
    CHECK(read[0].metadata == deepest.metadata);
}

TEMPLATE_LIST_TEST_CASE(
    "NaN and infinity are refused unwritten, and every finite number reads back as it went in",
    "[store][contract][json]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double infinity = std::numeric_limits<double>::infinity();
    for (const json& payload : {json(nan), json(infinity), json(-infinity), json{{"x", {1, 2, {{"y", nan}}}}},
                                json::array({0.5, -infinity})}) {
        CAPTURE(payload.dump());
        try {
            (void)store.append("s", ExpectedRevision::any(), event("odd", payload));
            FAIL("a payload with a number JSON cannot hold was stored");
        } catch (const krmx::InvalidAppend& e) {
            CHECK_THAT(e.what(),
                       Catch::Matchers::Contains("payload of a \"odd\" event holds a number that is "
                                                 "not finite"));
        }
    }
    NewEvent odd_metadata = event("odd");
    odd_metadata.metadata = json{{"at", nan}};
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), odd_metadata), krmx::InvalidAppend);
    CHECK(store.head_position() == 1);

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
    REQUIRE(read.size() == 1);
    CHECK(read[0].payload == finite.payload);
    CHECK(read[0].metadata == finite.metadata);
    CHECK(read[0].payload->dump() == finite.payload->dump());
}

TEMPLATE_LIST_TEST_CASE("errors show the names they mention quoted and escaped, never cut short",
                        "[store][contract][names]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    const std::string stream = "tab\there \"q\" \x01";
    const std::string id = "id\nwith \\ and \u00e9";
    (void)store.append(stream, ExpectedRevision::no_stream(), event("a", {{"n", 1}}, id));
    try {
        (void)store.append(stream, ExpectedRevision::no_stream(), event("b"));
        FAIL("the append should have failed");
    } catch (const krmx::WrongExpectedRevision& e) {
        CHECK_THAT(e.what(),
                   Catch::Matchers::Contains(R"(stream "tab\there \"q\" \u0001" expected no stream)"));
        CHECK(e.stream() == stream);
    }
    try {
        (void)store.append("other", ExpectedRevision::any(), event("a", {{"n", 2}}, id));
        FAIL("the append should have failed");
    } catch (const krmx::DuplicateEventId& e) {
        CHECK_THAT(e.what(),
                   Catch::Matchers::Contains("event id \"id\\nwith \\\\ and \u00e9\" is already stored"));
        CHECK(e.event_id() == id);
    }
    try {
        const std::vector<NewEvent> twice{event("a", nullptr, "x\ty"), event("b", nullptr, "x\ty")};
        (void)store.append(stream, ExpectedRevision::any(), twice);
        FAIL("the append should have failed");
    } catch (const krmx::InvalidAppend& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains(
                                 R"(append to "tab\there \"q\" \u0001" repeats the event id "x\ty")"));
    }
    try {
        (void)store.append(stream, ExpectedRevision::any(),
                           event("\"type\"", json{{"bad", std::string{"\xff"}}}));
        FAIL("the append should have failed");
    } catch (const krmx::InvalidAppend& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains(
                                 R"(payload of a "\"type\"" event holds text that is not valid UTF-8)"));
    }
    CHECK(store.head_position() == 1);
}

TEST_CASE("store errors show a name with NUL characters or bytes that are not UTF-8 whole, escaped",
          "[store][names]") {
    const std::string name{"a\0b\xff\"", 5};
    const krmx::WrongExpectedRevision wrong{name, ExpectedRevision::exact(3), std::nullopt};
    CHECK(std::string{wrong.what()} == R"(stream "a\u0000b\xff\"" expected revision 3 but is at no stream)");
    CHECK(wrong.stream() == name);
    const krmx::DuplicateEventId duplicate{name, 9};
    CHECK(std::string{duplicate.what()} ==
          R"(event id "a\u0000b\xff\"" is already stored for a different event at position 9)");
    CHECK(duplicate.event_id() == name);
}

TEMPLATE_LIST_TEST_CASE("reading a stream starts at a revision and stops at the batch size",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 10; ++i) {
        (void)store.append("s", ExpectedRevision::any(), event("tick", {{"n", i}}));
        (void)store.append("noise", ExpectedRevision::any(), event("tock"));
    }
    const auto batch = store.read_stream("s", 3, 4);
    REQUIRE(batch.size() == 4);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        CHECK(batch[i].stream == "s");
        CHECK(batch[i].revision == 3 + i);
        CHECK(batch[i].payload == json{{"n", 3 + i}});
    }
    CHECK(store.read_stream("s", 8).size() == 2);
    CHECK(store.read_stream("s", 10).empty());
    CHECK(store.read_stream("missing").empty());
}

TEMPLATE_LIST_TEST_CASE("reading all streams after a position comes in bounded batches in position order",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 25; ++i)
        (void)store.append("s" + std::to_string(i % 3), ExpectedRevision::any(), event("t"));
    std::vector<Position> seen;
    Position after = 0;
    int batches = 0;
    for (;;) {
        const auto batch = store.read_all(after, 7);
        CHECK(batch.size() <= 7);
        if (batch.empty()) break;
        ++batches;
        for (const auto& e : batch) seen.push_back(e.position);
        after = batch.back().position;
    }
    CHECK(batches == 4);
    REQUIRE(seen.size() == 25);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i + 1);
    CHECK(store.read_all(25).empty());
    CHECK(store.read_all(100).empty());
}

TEMPLATE_LIST_TEST_CASE("a filtered read finds matches far apart, in order, in bounded batches",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    // 20 000 events; the rare type sits at positions 3, 9 000, 9 001 and 20 000 (stores may read in windows).
    std::vector<krmx::NewEvent> batch;
    for (int i = 1; i <= 20'000; ++i) {
        const bool rare = i == 3 || i == 9'000 || i == 9'001 || i == 20'000;
        batch.push_back(event(rare ? "rare" : "common"));
    }
    (void)store.append("s", ExpectedRevision::any(), batch);
    (void)store.append("other", ExpectedRevision::any(), event("rare"));
    const EventFilter rare{.streams = {"s"}, .types = {"rare"}};
    const auto all = store.read_all(0, krmx::read_unbounded, rare);
    REQUIRE(all.size() == 4);
    CHECK(all[0].position == 3);
    CHECK(all[1].position == 9'000);
    CHECK(all[2].position == 9'001);
    CHECK(all[3].position == 20'000);
    std::vector<Position> seen;
    for (Position after = 0;;) {
        const auto some = store.read_all(after, 3, rare);
        CHECK(some.size() <= 3);
        if (some.empty()) break;
        for (const auto& e : some) seen.push_back(e.position);
        after = some.back().position;
    }
    CHECK(seen == std::vector<Position>{3, 9'000, 9'001, 20'000});
    CHECK(store.read_all(20'000, krmx::read_unbounded, rare).empty());
    const auto anywhere = store.read_all(9'000, 2, EventFilter{.types = {"rare"}});
    REQUIRE(anywhere.size() == 2);
    CHECK(anywhere[0].position == 9'001);
    CHECK(anywhere[1].position == 20'000);
    CHECK(store.read_all(20'000, 5, EventFilter{.types = {"rare"}}).size() == 1);
}

TEMPLATE_LIST_TEST_CASE("for_each_event streams every event in order, filtered and bounded like read_all",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
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
    const auto expected = store.read_all(0, krmx::read_unbounded);
    REQUIRE(expected.size() == 20'000);
    std::vector<RecordedEvent> seen;
    const auto count =
        krmx::for_each_event(store, 0, [&](RecordedEvent& e) { seen.push_back(std::move(e)); });
    CHECK(count == 20'000);
    REQUIRE(seen.size() == expected.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
        if (seen[i] != expected[i]) FAIL("event " << i + 1 << " differs from read_all's");
    }

    std::vector<Position> positions;
    const auto collect = [&](RecordedEvent& e) {
        positions.push_back(e.position);
    };
    CHECK(krmx::for_each_event(store, 19'990, collect) == 10);
    CHECK(positions == std::vector<Position>{19'991, 19'992, 19'993, 19'994, 19'995, 19'996, 19'997, 19'998,
                                             19'999, 20'000});
    positions.clear();
    CHECK(krmx::for_each_event(store, 0, collect, EventFilter{.types = {"rare"}}) == 4);
    CHECK(positions == std::vector<Position>{3, 9'000, 9'001, 20'000});
    positions.clear();
    CHECK(krmx::for_each_event(store, 3, collect, EventFilter{.types = {"rare"}}, 2) == 2);
    CHECK(positions == std::vector<Position>{9'000, 9'001});
    positions.clear();
    CHECK(krmx::for_each_event(store, 100, collect, {}, 3) == 3);
    CHECK(positions == std::vector<Position>{101, 102, 103});
    positions.clear();
    const EventFilter stream_and_type{.streams = {"s3", "none"}, .types = {"rare", "common"}};
    CHECK(krmx::for_each_event(store, 17'000, collect, stream_and_type) ==
          store.read_all(17'000, krmx::read_unbounded, stream_and_type).size());
    CHECK(positions == positions_of(store.read_all(17'000, krmx::read_unbounded, stream_and_type)));
    CHECK(krmx::for_each_event(store, 20'000, collect) == 0);
    CHECK(krmx::for_each_event(store, 0, collect, EventFilter{.streams = {"none"}}) == 0);
    CHECK(krmx::for_each_event(store, 0, collect, {}, 0) == 0);
}

TEMPLATE_LIST_TEST_CASE("filters match names with quotes, backslashes and NUL exactly, never by a prefix",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
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
    check_filters(store, cases);
}

TEMPLATE_LIST_TEST_CASE(
    "an exception from for_each_event's callee stops the read and leaves the store usable",
    "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 30);
    struct Enough {};
    for (int round = 0; round < 3; ++round) {
        std::vector<Position> seen;
        CHECK_THROWS_AS(krmx::for_each_event(store, 0,
                                             [&](const RecordedEvent& e) {
                                                 seen.push_back(e.position);
                                                 if (e.position == 12) throw Enough{};
                                             }),
                        Enough);
        CHECK(seen.size() == 12);
        // An exception of the store's own kinds passes through unchanged too (never taken for its own).
        CHECK_THROWS_AS(
            krmx::for_each_event(store, 0, [](const RecordedEvent&) { throw krmx::StoreError("mine"); }),
            krmx::StoreError);
        (void)store.append("s", ExpectedRevision::any(), event("tick", {{"n", 30 + round}}));
        CHECK(store.read_all(0).size() == 31 + static_cast<std::size_t>(round));
        CHECK(krmx::for_each_event(store, 0, [](const RecordedEvent&) {}) ==
              31 + static_cast<std::size_t>(round));
    }
}

TEMPLATE_LIST_TEST_CASE("for_each_event's callee may use the store it reads", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    std::vector<std::size_t> reads;
    CHECK(krmx::for_each_event(
              store, 0,
              [&](const RecordedEvent& e) {
                  reads.push_back(store.read_all(0, krmx::read_unbounded).size());
                  (void)store.append("copy-of-" + e.stream, ExpectedRevision::any(), event("copied"));
              },
              EventFilter{.streams = {"s"}}) == 5);
    CHECK(reads == std::vector<std::size_t>{5, 6, 7, 8, 9});
    CHECK(store.head_position() == 10);
}

TEMPLATE_LIST_TEST_CASE("reads filter by stream and by type", "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    for (int i = 0; i < 12; ++i) {
        (void)store.append("s" + std::to_string(i % 3), ExpectedRevision::any(),
                           event(i % 2 == 0 ? "even" : "odd"));
    }
    const auto by_stream = store.read_all(0, krmx::read_unbounded, EventFilter{.streams = {"s1"}});
    CHECK(positions_of(by_stream) == std::vector<Position>{2, 5, 8, 11});
    const auto by_streams = store.read_all(4, krmx::read_unbounded, EventFilter{.streams = {"s0", "s2"}});
    CHECK(positions_of(by_streams) == std::vector<Position>{6, 7, 9, 10, 12});
    const auto by_type = store.read_all(0, 3, EventFilter{.types = {"odd"}});
    CHECK(positions_of(by_type) == std::vector<Position>{2, 4, 6});
    const auto both =
        store.read_all(0, krmx::read_unbounded, EventFilter{.streams = {"s0"}, .types = {"odd"}});
    CHECK(positions_of(both) == std::vector<Position>{4, 10});
    CHECK(store.read_all(0, krmx::read_unbounded, EventFilter{.streams = {"none"}}).empty());
}

TEMPLATE_LIST_TEST_CASE(
    "a subscription from the start delivers the stored events, then caught_up, then live events",
    "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_caught_up());
    CHECK(recorder.caught_up_after() >= 5);
    append_ticks(store, "s", 5, 5);
    REQUIRE(recorder.wait_for_events(10));
    const auto events = recorder.events();
    REQUIRE(events.size() == 10);
    for (std::size_t i = 0; i < events.size(); ++i) {
        CHECK(events[i].position == i + 1);
        CHECK(events[i].payload == json{{"n", i}});
    }
    CHECK(recorder.caught_up() == 1);
    CHECK_FALSE(recorder.error());
}

TEMPLATE_LIST_TEST_CASE("a subscription on an empty store still signals caught_up", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_caught_up());
    CHECK(recorder.caught_up_after() == 0);
    (void)store.append("s", ExpectedRevision::any(), event("first"));
    REQUIRE(recorder.wait_for_events(1));
    CHECK(recorder.caught_up() == 1);
}

TEMPLATE_LIST_TEST_CASE(
    "a subscription after a position starts with the next one and one from the end sees only new events",
    "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 6);
    Recorder after_four;
    Recorder from_end;
    auto a = store.subscribe(SubscribeFrom::after(4), after_four.handlers());
    auto b = store.subscribe(SubscribeFrom::end(), from_end.handlers());
    REQUIRE(after_four.wait_caught_up());
    REQUIRE(from_end.wait_caught_up());
    CHECK(from_end.caught_up_after() == 0);
    append_ticks(store, "s", 2, 6);
    REQUIRE(after_four.wait_for_events(4));
    REQUIRE(from_end.wait_for_events(2));
    CHECK(after_four.positions() == std::vector<Position>{5, 6, 7, 8});
    CHECK(from_end.positions() == std::vector<Position>{7, 8});
}

TEMPLATE_LIST_TEST_CASE("a subscription filters by stream and type", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("a", ExpectedRevision::any(), event("x"));
    (void)store.append("b", ExpectedRevision::any(), event("x"));
    (void)store.append("a", ExpectedRevision::any(), event("y"));
    Recorder recorder;
    auto subscription =
        store.subscribe(SubscribeFrom::start(), recorder.handlers(), EventFilter{.streams = {"a"}});
    REQUIRE(recorder.wait_caught_up());
    (void)store.append("b", ExpectedRevision::any(), event("x"));
    (void)store.append("a", ExpectedRevision::any(), event("z"));
    REQUIRE(recorder.wait_for_events(3));
    CHECK(recorder.positions() == std::vector<Position>{1, 3, 5});
}

TEMPLATE_LIST_TEST_CASE("a cancelled subscription receives nothing more", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    REQUIRE(recorder.wait_for_events(1));
    subscription.cancel();
    CHECK_FALSE(subscription.active());
    append_ticks(store, "s", 3);
    // A fresh subscription sees the new events, so the old one had every chance to see them too.
    Recorder witness;
    auto other = store.subscribe(SubscribeFrom::start(), witness.handlers());
    REQUIRE(witness.wait_for_events(4));
    CHECK(recorder.events().size() == 1);
}

TEMPLATE_LIST_TEST_CASE("a subscription can be cancelled from inside its own callback", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 5);
    std::atomic<int> seen{0};
    krmx::Subscription subscription;
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
    REQUIRE(cancelled);
    append_ticks(store, "s", 2);
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    CHECK(seen == 2);
}

TEMPLATE_LIST_TEST_CASE("a subscriber that throws is stopped and told why", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 3);
    Recorder recorder;
    auto handlers = recorder.handlers();
    auto record = handlers.on_event;
    handlers.on_event = [record](const RecordedEvent& e) {
        if (e.position == 2) throw std::runtime_error("subscriber broke");
        record(e);
    };
    auto subscription = store.subscribe(SubscribeFrom::start(), handlers);
    REQUIRE(recorder.wait_error());
    CHECK_THROWS_WITH(std::rethrow_exception(recorder.error()), "subscriber broke");
    append_ticks(store, "s", 1);
    CHECK(recorder.positions() == std::vector<Position>{1});
    CHECK(recorder.caught_up() == 0);
}

TEMPLATE_LIST_TEST_CASE("an on_error handler that throws is counted in the store's statistics",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    CHECK(store.statistics().error_handler_failures == 0);
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
    CHECK(told == 1);
    CHECK(store.statistics().error_handler_failures == 1);
}

TEMPLATE_LIST_TEST_CASE("concurrent appends expecting the same revision: exactly one wins each round",
                        "[store][contract]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    (void)store.append("s", ExpectedRevision::no_stream(), event("start"));
    constexpr int threads = 4;
    constexpr int rounds = 20;
    for (int round = 0; round < rounds; ++round) {
        std::atomic<int> wins{0};
        std::atomic<int> losses{0};
        std::vector<std::thread> racers;
        for (int t = 0; t < threads; ++t) {
            racers.emplace_back([&, t] {
                try {
                    (void)store.append("s", ExpectedRevision::exact(round), event("move", {{"by", t}}));
                    ++wins;
                } catch (const krmx::WrongExpectedRevision& e) {
                    if (e.actual() == krmx::Revision(round + 1)) ++losses;
                }
            });
        }
        for (auto& racer : racers) racer.join();
        CHECK(wins == 1);
        CHECK(losses == threads - 1);
    }
    CHECK(store.stream_revision("s") == rounds);
    CHECK(store.head_position() == rounds + 1);
}

TEMPLATE_LIST_TEST_CASE("the store satisfies the EventStore concept", "[store][contract]",
                        EventStoreFixtures) {
    STATIC_REQUIRE(krmx::EventStore<typename TestType::Store>);
}

TEMPLATE_LIST_TEST_CASE("a subscription handle that outlives its store is harmless", "[store][contract]",
                        EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    append_ticks(store, "s", 3);
    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_for_events(3));
    fixture.close();  // stops delivery first, then closes
    subscription.cancel();
    CHECK(recorder.events().size() == 3);
}
