// Read models over the bookstore: run modes, signals, checkpoints and their strategies, at-least-once.

#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "krmx/core/clock.hpp"
#include "krmx/models/read_model_runner.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "models_test_support.hpp"

using namespace bookstore;
using krmx::MemoryEventStore;
using nlohmann::json;
using Kind = krmx::ModelSignal::Kind;

namespace {
const Listing expected_listing{{{"1", ListedBook{"Dune", "Frank Herbert", 24.99}},
                                {"2", ListedBook{"Neuromancer", "William Gibson", 34.99}}}};
const Available expected_available{{{"1", 9}, {"2", 5}}};

template <class State>
using Runner = krmx::ReadModelRunner<State, MemoryEventStore>;
}  // namespace

TEST_CASE("the canonical bookstore history gives the listing and the available copies", "[models][read]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    Runner<Listing> listing{listing_model(), store};
    Runner<Available> available{available_model(), store};
    const auto report = listing.catch_up();
    CHECK(report.position == models_test::canonical_history_size);
    CHECK(report.events == models_test::canonical_history_size);
    CHECK(listing.state() == expected_listing);
    CHECK(listing.state().books.at("1").price == 24.99);
    const auto available_report = available.catch_up();
    CHECK(available.state() == expected_available);
    CHECK(available_report.ignored == 1);  // the price change: the StreamModel has no handler for it
}

TEST_CASE("catching up twice gives the same state as catching up once", "[models][read]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    krmx::MemoryCheckpointStore checkpoints;
    Runner<Available> runner{available_model(), store};
    runner.use_checkpoints(checkpoints);
    (void)runner.catch_up();
    const auto second = runner.catch_up();
    CHECK(second.events == 0);
    CHECK(runner.state() == expected_available);
    Runner<Available> fresh{available_model(), store};
    fresh.use_checkpoints(checkpoints);
    const auto third = fresh.catch_up();
    CHECK(third.restored);
    CHECK(third.events == 0);
    CHECK(fresh.state() == expected_available);
}

TEST_CASE("signals come in order: from the start, events, caught up; restored after loading a checkpoint",
          "[models][read]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 10}));
    (void)store.append("book-9", krmx::ExpectedRevision::any(), krmx::NewEvent{.type = "book.stolen"});
    models_test::append(store, "1", book_lent(Lending{"1", "alice"}));
    std::vector<std::string> seen;
    auto model =
        listing_model()
            .reduce([&](Listing&, const krmx::CatalogEvent& e) { seen.push_back(std::string{e.type()}); })
            .on_signal([&](const krmx::ModelSignal& s) {
                seen.push_back(std::string{krmx::to_string(s.kind)} + "@" + std::to_string(s.position));
            });
    krmx::MemoryCheckpointStore checkpoints;
    {
        Runner<Listing> runner{model, store};
        runner.use_checkpoints(checkpoints);
        const auto report = runner.catch_up();
        CHECK(report.unknown == 1);
        CHECK(seen == std::vector<std::string>{"from_start@0", "book.added", "unknown_event@2", "book.lent",
                                               "caught_up@3"});
    }
    seen.clear();
    Runner<Listing> again{model, store};
    again.use_checkpoints(checkpoints);
    (void)again.catch_up();
    CHECK(seen == std::vector<std::string>{"restored@3", "caught_up@3"});
    seen.clear();
    seen.clear();
    Runner<Listing> restoring{model, store};
    restoring.use_checkpoints(checkpoints);
    (void)restoring.restore_only();
    CHECK(seen == std::vector<std::string>{"restored@3"});
}

TEST_CASE("a runner that goes on from its own last run has resumed: it restored no checkpoint",
          "[models][read]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    std::vector<std::string> seen;
    auto model = listing_model().on_signal([&](const krmx::ModelSignal& s) {
        seen.push_back(std::string{krmx::to_string(s.kind)} + "@" + std::to_string(s.position));
    });
    krmx::MemoryCheckpointStore checkpoints;
    Runner<Listing> runner{model, store};
    runner.use_checkpoints(checkpoints);
    (void)runner.catch_up();
    seen.clear();
    models_test::append(store, "2", book_lent(Lending{"2", "carol"}));
    const auto again = runner.catch_up();
    CHECK(again.resumed);
    CHECK_FALSE(again.restored);
    CHECK(again.events == 1);
    CHECK(seen == std::vector<std::string>{"resumed@8", "caught_up@9"});
    seen.clear();
    const auto loaded_nothing = runner.restore_only();
    CHECK(loaded_nothing.resumed);
    CHECK_FALSE(loaded_nothing.restored);
    CHECK(seen == std::vector<std::string>{"resumed@9"});
    // Without checkpoints, too: nothing was loaded.
    Runner<Listing> plain{listing_model(), store};
    CHECK_FALSE(plain.catch_up().resumed);
    const auto plain_again = plain.catch_up();
    CHECK(plain_again.resumed);
    CHECK_FALSE(plain_again.restored);
}

TEST_CASE("a live read model follows new appends until stopped", "[models][read][live]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    Runner<Available> runner{available_model(), store};
    std::jthread live{[&](std::stop_token stop) {
        (void)runner.follow(stop);
    }};
    REQUIRE(
        models_test::eventually([&] { return runner.position() == models_test::canonical_history_size; }));
    models_test::append(store, "2", book_lent(Lending{"2", "carol"}));
    models_test::append(store, "4", book_added(BookAdded{"4", "Hyperion", "Dan Simmons", 9.99, 1}));
    REQUIRE(models_test::eventually(
        [&] { return runner.position() == models_test::canonical_history_size + 2; }));
    CHECK(runner.state().copies == std::map<std::string, int>{{"1", 9}, {"2", 4}, {"4", 1}});
    live.request_stop();
    live.join();
    models_test::append(store, "2", book_lent(Lending{"2", "dave"}));
    CHECK(runner.state().copies.at("2") == 4);  // stopped: no longer follows
}

TEST_CASE("live events are upcast like stored ones", "[models][read][live]") {
    MemoryEventStore store;
    Runner<Listing> runner{listing_model(), store};
    std::jthread live{[&](std::stop_token stop) {
        (void)runner.follow(stop);
    }};
    (void)store.append(
        "book-5", krmx::ExpectedRevision::any(),
        krmx::NewEvent{
            .type = "book.added",
            .payload =
                json{{"id", "5"}, {"title", "Old"}, {"author", "A"}, {"price_cents", 1250}, {"copies", 1}}});
    REQUIRE(models_test::eventually([&] { return runner.position() == 1; }));
    CHECK(runner.state().books.at("5") == ListedBook{"Old", "A", 12.5});
}

TEST_CASE("a manual checkpoint then restore-only gives the checkpointed, older state",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 10}));
    Runner<Available> runner{available_model(), store};
    runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::manual());
    (void)runner.catch_up();
    CHECK_FALSE(checkpoints.load("book.available").has_value());  // manual: nothing saved by itself
    REQUIRE(runner.checkpoint());
    models_test::append(store, "1", book_lent(Lending{"1", "alice"}));
    (void)runner.catch_up();
    CHECK(runner.state().copies.at("1") == 9);

    Runner<Available> restored{available_model(), store};
    restored.use_checkpoints(checkpoints, krmx::CheckpointStrategy::manual());
    const auto report = restored.restore_only();
    CHECK(report.restored);
    CHECK(report.position == 1);
    CHECK(restored.state().copies.at("1") == 10);
}

TEST_CASE("a handler that throws keeps the last good checkpoint and a fresh run reprocesses from there",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    std::vector<krmx::Position> processed;
    bool fail_on_second = true;
    auto model = krmx::ReadModel<Listing>{"book.listing", 1, catalog()}.reduce(
        [&](Listing& s, const krmx::CatalogEvent& e) {
            if (fail_on_second && e.position() == 2) throw std::runtime_error("projection down");
            processed.push_back(e.position());
            reduce_listing(s, e);
        });
    Runner<Listing> runner{model, store};
    runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::after_every_event());
    CHECK_THROWS_WITH(runner.catch_up(), "projection down");
    REQUIRE(checkpoints.load("book.listing").has_value());
    CHECK(checkpoints.load("book.listing")->position == 1);
    CHECK(processed == std::vector<krmx::Position>{1});

    fail_on_second = false;
    processed.clear();
    Runner<Listing> fresh{model, store};
    fresh.use_checkpoints(checkpoints, krmx::CheckpointStrategy::after_every_event());
    const auto report = fresh.catch_up();
    CHECK(report.restored);
    CHECK(processed == std::vector<krmx::Position>{2, 3, 4, 5, 6, 7, 8});
    CHECK(fresh.state() == expected_listing);
}

TEST_CASE("a failed run makes the same runner restore its checkpoint on the next run",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    int calls = 0;
    auto model = krmx::ReadModel<Listing>{"book.listing", 1, catalog()}.reduce(
        [&](Listing& s, const krmx::CatalogEvent& e) {
            if (++calls == 5) throw std::runtime_error("once");
            reduce_listing(s, e);
        });
    Runner<Listing> runner{model, store};
    runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::every_n_events(3));
    CHECK_THROWS(runner.catch_up());
    CHECK(checkpoints.load("book.listing")->position == 3);
    const auto report = runner.catch_up();
    CHECK(report.restored);
    CHECK(report.events == 5);  // 4 to 8 again: at-least-once
    CHECK(runner.state() == expected_listing);
}

TEST_CASE("a revision bump discards the checkpoint and replays from the start",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    {
        Runner<Listing> v1{listing_model(1), store};
        v1.use_checkpoints(checkpoints);
        (void)v1.catch_up();
        CHECK(checkpoints.load("book.listing")->version == "book.listing@1/bookstore@1");
    }
    Runner<Listing> v2{listing_model(2), store};
    v2.use_checkpoints(checkpoints);
    const auto report = v2.catch_up();
    CHECK(report.discarded_checkpoint);
    CHECK_FALSE(report.restored);
    CHECK(report.events == models_test::canonical_history_size);
    CHECK(v2.state() == expected_listing);
    CHECK(checkpoints.load("book.listing")->version == "book.listing@2/bookstore@1");
}

TEST_CASE("a catalog revision bump also forces a full replay", "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    Runner<Listing> v1{listing_model(), store};
    v1.use_checkpoints(checkpoints);
    (void)v1.catch_up();
    auto bumped = krmx::EventCatalog{"bookstore", 2}
                      .add(book_added)
                      .add(price_changed)
                      .add(book_removed)
                      .upcast(book_added, &book_added_v1_to_v2);
    Runner<Listing> v2{krmx::ReadModel<Listing>{"book.listing", 1, bumped}.reduce(&reduce_listing), store};
    v2.use_checkpoints(checkpoints);
    const auto report = v2.catch_up();
    CHECK(report.discarded_checkpoint);
    CHECK(report.events == 5);
    CHECK(report.unknown == 3);  // lent and returned are not in the smaller catalog: reported, not dropped
    CHECK(v2.state() == expected_listing);
}

TEST_CASE("checkpoint strategies save every n events, every interval, or only at the end",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    krmx::MemoryCheckpointStore checkpoints;
    SECTION("every 3 events, and at the end") {
        Runner<Listing> runner{listing_model(), store};
        runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::every_n_events(3));
        CHECK(runner.catch_up().checkpoints == 3);  // after 3, 6 and at the end (8)
    }
    SECTION("after every event") {
        Runner<Listing> runner{listing_model(), store};
        runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::after_every_event());
        CHECK(runner.catch_up().checkpoints == 8);
    }
    SECTION("only at the end") {
        Runner<Listing> runner{listing_model(), store};
        runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::at_end());
        CHECK(runner.catch_up().checkpoints == 1);
    }
    SECTION("every interval, on an injected clock") {
        krmx::ManualClock clock;
        int calls = 0;
        auto model = listing_model().reduce([&](Listing& s, const krmx::CatalogEvent& e) {
            reduce_listing(s, e);
            if (++calls % 4 == 0)
                clock.advance(std::chrono::seconds{10});  // time passes after events 4 and 8
        });
        Runner<Listing> runner{model, store};
        runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::every(std::chrono::seconds{10}, clock));
        CHECK(runner.catch_up().checkpoints ==
              2);  // after event 4 and after event 8; nothing left at the end
        CHECK(checkpoints.load("book.listing")->position == 8);
    }
}

TEST_CASE("a guard of a StreamModel that refuses a stored event is reported and skipped", "[models][read]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_lent(Lending{"1", "alice"}));  // lent before it was added
    auto strict = krmx::StreamModel<Available>{}.when(
        book_lent,
        [](const Available& s, std::string_view, const Lending& e) { return s.copies.contains(e.book_id); },
        [](Available& s, std::string_view, const Lending& e) { --s.copies[e.book_id]; });
    std::vector<std::string> reasons;
    auto model = krmx::ReadModel<Available>::reducing("strict", 1, catalog(), strict)
                     .on_signal([&](const krmx::ModelSignal& s) {
                         if (s.kind == Kind::refused_event) reasons.emplace_back(s.reason);
                     });
    Runner<Available> runner{model, store};
    const auto report = runner.catch_up();
    CHECK(report.refused == 1);
    CHECK(reasons == std::vector<std::string>{"refused by guard"});
    CHECK(runner.state().copies.empty());
}

TEST_CASE("runners of one model with different filters keep separate checkpoints",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    const auto only = [](std::string stream) {
        return listing_model().filter(krmx::EventFilter{.streams = {std::move(stream)}});
    };
    Runner<Listing> book1{only("book-1"), store};
    Runner<Listing> book2{only("book-2"), store};
    book1.use_checkpoints(checkpoints);
    book2.use_checkpoints(checkpoints);
    (void)book1.catch_up();
    const auto second = book2.catch_up();
    CHECK_FALSE(second.restored);  // book 1's checkpoint is no state of book 2
    CHECK(book2.state() == Listing{{{"2", ListedBook{"Neuromancer", "William Gibson", 34.99}}}});
    CHECK(book1.checkpoint_key() != book2.checkpoint_key());

    Runner<Listing> book1_again{only("book-1"), store};
    book1_again.use_checkpoints(checkpoints);
    const auto report = book1_again.catch_up();
    CHECK(report.restored);
    CHECK_FALSE(report.discarded_checkpoint);
    CHECK(book1_again.state() == Listing{{{"1", ListedBook{"Dune", "Frank Herbert", 24.99}}}});
    // An unfiltered runner of the same model keeps its own checkpoint too, under the model's name.
    Runner<Listing> everything{listing_model(), store};
    everything.use_checkpoints(checkpoints);
    CHECK_FALSE(everything.catch_up().restored);
    CHECK(everything.checkpoint_key() == "book.listing");
    CHECK(everything.state() == expected_listing);
}

TEST_CASE("checkpoint keys tell every model name and filter apart", "[models][read][checkpoint]") {
    using krmx::EventFilter;
    const auto key = [](std::string_view name, EventFilter filter = {}) {
        return krmx::checkpoint_key(name, filter);
    };
    CHECK(key("listing") == "listing");
    // The order of a filter's lists does not change what it selects, nor its key.
    CHECK(key("l", EventFilter{.streams = {"a", "b"}}) == key("l", EventFilter{.streams = {"b", "a", "a"}}));
    const std::vector<std::string> keys{
        key("l"),
        key("l", EventFilter{.streams = {"a"}}),
        key("l", EventFilter{.types = {"a"}}),
        key("l", EventFilter{.streams = {"a", "b"}}),
        key("l", EventFilter{.streams = {"a,b"}}),
        key("l", EventFilter{.streams = {"a"}, .types = {"b"}}),
        key("l", EventFilter{.streams = {"a|types=b"}}),
        key("l|streams=a"),
        key("l", EventFilter{.streams = {""}}),
        key("l%7Cstreams=a"),
    };
    for (std::size_t i = 0; i < keys.size(); ++i) {
        for (std::size_t j = i + 1; j < keys.size(); ++j) {
            INFO(keys[i] << " vs " << keys[j]);
            CHECK(keys[i] != keys[j]);
        }
    }
}

TEST_CASE(
    "a read model starting from the first event runs its reset hook and saves the reset with the "
    "checkpoint",
    "[models][read][checkpoint]") {
    MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    int resets = 0;
    const auto model = [&](std::uint32_t revision) {
        return listing_model(revision).on_reset([&resets] { ++resets; });
    };
    {
        Runner<Listing> v1{model(1), store};
        v1.use_checkpoints(checkpoints);
        (void)v1.catch_up();
        CHECK(resets == 1);  // from the first event: whatever the hook clears is stale
        (void)v1.catch_up();
        CHECK(resets == 1);  // resuming its own progress
    }
    Runner<Listing> restarted{model(1), store};
    restarted.use_checkpoints(checkpoints);
    CHECK(restarted.catch_up().restored);
    CHECK(resets == 1);  // restored from the checkpoint
    Runner<Listing> bumped{model(2), store};
    bumped.use_checkpoints(checkpoints);
    const auto report = bumped.catch_up();
    CHECK(report.discarded_checkpoint);
    CHECK(resets == 2);
    CHECK(bumped.state() == expected_listing);
}

namespace {
// Checkpoints in memory, with batch hooks whose rollback fails (a projection that lost its database).
struct UnrollableProjection {
    krmx::MemoryCheckpointStore checkpoints;
    [[nodiscard]] std::optional<krmx::Checkpoint> load(std::string_view key) const {
        return checkpoints.load(key);
    }
    void save(std::string_view key, const krmx::Checkpoint& checkpoint) { checkpoints.save(key, checkpoint); }
    bool erase(std::string_view key) { return checkpoints.erase(key); }
    void begin_batch() {}
    void abort_batch() { throw std::runtime_error("connection lost"); }
};
}  // namespace

TEST_CASE("a failed run whose batch cannot be rolled back is counted, and the run's own error comes out",
          "[models][read][checkpoint]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    UnrollableProjection projection;
    bool fail = true;
    auto model = listing_model().reduce([&](Listing& s, const krmx::CatalogEvent& e) {
        if (fail && e.position() == 3) throw std::runtime_error("projection down");
        reduce_listing(s, e);
    });
    Runner<Listing> runner{model, store};
    runner.use_checkpoints(projection, krmx::CheckpointStrategy::after_every_event());
    CHECK(runner.failed_rollbacks() == 0);
    CHECK_THROWS_WITH(runner.catch_up(), "projection down");
    CHECK(runner.failed_rollbacks() == 1);
    fail = false;
    CHECK(runner.catch_up().restored);
    CHECK(runner.failed_rollbacks() == 1);
}
