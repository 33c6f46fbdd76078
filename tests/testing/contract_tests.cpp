// The contract suites find what they promise to find: each is run on stores and lock providers broken on
// purpose (a restart that loses the last event, positions with a gap, a checkpoint that is never replaced or
// does not survive a restart, locks that let two holders in), and must fail the very cases that are about
// the bug while the memory stores pass. The project's own stores run the suites in tests/store and
// tests/models.

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <krmx/models/lock_provider.hpp>
#include <krmx/store/checkpoint_store.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/testing/checkpoint_store_contract.hpp>
#include <krmx/testing/contract.hpp>
#include <krmx/testing/event_store_contract.hpp>
#include <krmx/testing/lock_provider_contract.hpp>

#include "broken_stores.hpp"
#include "catch.hpp"

// A namespace of its own: the unity build puts this file beside the others of tests/testing.
namespace contract_tests {

using krmx::AppendResult;
using krmx::ExpectedRevision;
using krmx::MemoryEventStore;
using krmx::Position;
using krmx::RecordedEvent;
using krmx::testing::ContractReport;
using broken_stores::LosesLastEventOnRestart;
using broken_stores::MemoryEvents;

// ---- the stores as they should be ----

struct MemoryCheckpoints {
    static constexpr const char* name = "memory";
    std::unique_ptr<krmx::MemoryCheckpointStore> store = std::make_unique<krmx::MemoryCheckpointStore>();
    krmx::MemoryCheckpointStore& open() {
        if (!store) store = std::make_unique<krmx::MemoryCheckpointStore>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};

struct InProcessLocks {
    static constexpr const char* name = "in process";
    krmx::InProcessLockProvider provider;
    krmx::InProcessLockProvider& first() { return provider; }
    krmx::InProcessLockProvider& second() { return provider; }
};

// ---- broken on purpose ----

// Hands out global positions with a gap: 1, 2, 4, 5, ... (position 3 is never used), everything else right.
class GapStore {
  public:
    krmx::AppendResult append(std::string_view stream, ExpectedRevision expected,
                              std::span<const krmx::NewEvent> events) {
        AppendResult result = inner_.append(stream, expected, events);
        result.first_position = out(result.first_position);
        result.last_position = out(result.last_position);
        return result;
    }
    krmx::AppendResult append(std::string_view stream, ExpectedRevision expected,
                              const krmx::NewEvent& event) {
        return append(stream, expected, std::span<const krmx::NewEvent>{&event, 1});
    }
    [[nodiscard]] std::vector<RecordedEvent> read_stream(std::string_view stream, krmx::Revision from = 0,
                                                         std::size_t max_count = krmx::read_unbounded) const {
        return translated(inner_.read_stream(stream, from, max_count));
    }
    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after = 0,
                                                      std::size_t max_count = krmx::read_unbounded,
                                                      const krmx::EventFilter& filter = {}) const {
        return translated(inner_.read_all(in(after), max_count, filter));
    }
    [[nodiscard]] std::optional<krmx::Revision> stream_revision(std::string_view stream) const {
        return inner_.stream_revision(stream);
    }
    [[nodiscard]] Position head_position() const { return out(inner_.head_position()); }
    [[nodiscard]] krmx::Subscription subscribe(krmx::SubscribeFrom from, krmx::SubscriptionHandlers handlers,
                                               krmx::EventFilter filter = {}) {
        if (!from.is_end() && from.position() > 0) from = krmx::SubscribeFrom::after(in(from.position()));
        if (handlers.on_event) {
            handlers.on_event = [on_event = std::move(handlers.on_event)](const RecordedEvent& e) {
                RecordedEvent moved = e;
                moved.position = out(e.position);
                on_event(moved);
            };
        }
        return inner_.subscribe(from, std::move(handlers), std::move(filter));
    }
    [[nodiscard]] krmx::StoreStatistics statistics() const { return inner_.statistics(); }

  private:
    static Position out(Position p) { return p >= 3 ? p + 1 : p; }  // the inner store's position, shown
    static Position in(Position after) { return after >= 3 ? after - 1 : after; }
    static std::vector<RecordedEvent> translated(std::vector<RecordedEvent> events) {
        for (auto& e : events) e.position = out(e.position);
        return events;
    }
    MemoryEventStore inner_;
};
static_assert(krmx::EventStore<GapStore>);

struct PositionsWithAGap {
    static constexpr const char* name = "a memory store whose positions skip 3";
    std::unique_ptr<GapStore> store = std::make_unique<GapStore>();
    GapStore& open() {
        if (!store) store = std::make_unique<GapStore>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};

// A fixture whose store cannot even be made: every case must fail with the reason, none may crash.
struct NoDatabase : MemoryEvents {
    static constexpr const char* name = "a store without its database";
    NoDatabase() { throw std::runtime_error("could not connect to the database at db.invalid"); }
};

// A restart forgets every checkpoint.
struct ForgetsCheckpointsOnRestart : MemoryCheckpoints {
    static constexpr const char* name = "checkpoints that do not survive a restart";
    void reopen() { store = std::make_unique<krmx::MemoryCheckpointStore>(); }
};

// Keeps the first checkpoint under a key for ever: a save over it is dropped.
class FirstSaveWins {
  public:
    [[nodiscard]] std::optional<krmx::Checkpoint> load(std::string_view key) const {
        return inner_.load(key);
    }
    void save(std::string_view key, const krmx::Checkpoint& checkpoint) {
        if (!inner_.load(key)) inner_.save(key, checkpoint);
    }
    bool erase(std::string_view key) { return inner_.erase(key); }

  private:
    krmx::MemoryCheckpointStore inner_;
};
static_assert(krmx::CheckpointStore<FirstSaveWins>);

struct StaleCheckpoints {
    static constexpr const char* name = "checkpoints that keep the first save";
    static constexpr bool keeps_json_as_is = true;  // it keeps JSON values, as the memory store it wraps
    std::unique_ptr<FirstSaveWins> store = std::make_unique<FirstSaveWins>();
    FirstSaveWins& open() {
        if (!store) store = std::make_unique<FirstSaveWins>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};

// Checks the name, then lets everyone in.
struct LetsEveryoneIn {
    [[nodiscard]] krmx::Lock acquire(std::string_view name) {
        krmx::detail::check_lock_name(name);
        return krmx::Lock{[] {
        }};
    }
};
static_assert(krmx::LockProvider<LetsEveryoneIn>);

struct TwoHolders {
    static constexpr const char* name = "locks that let two holders in";
    LetsEveryoneIn provider;
    LetsEveryoneIn& first() { return provider; }
    LetsEveryoneIn& second() { return provider; }
};

TEST_CASE("the memory stores and in-process locks keep every contract", "[testing][contract]") {
    const auto events = krmx::testing::event_store_contract<MemoryEvents>();
    INFO(events.str());
    CHECK(events.ok());
    CHECK(events.cases().size() == 42);
    CHECK(events.failures().empty());
    const auto checkpoints = krmx::testing::checkpoint_store_contract<MemoryCheckpoints>();
    INFO(checkpoints.str());
    CHECK(checkpoints.ok());
    // The memory store keeps JSON values as they are: the one case about writing them out does not apply.
    CHECK(checkpoints.skipped_case(
        "a checkpoint whose state cannot be stored is refused and the old one kept"));
    const auto locks = krmx::testing::lock_provider_contract<InProcessLocks>();
    INFO(locks.str());
    CHECK(locks.ok());
    CHECK(locks.cases().size() == 3);
}

TEST_CASE("the event store contract catches a store that loses its last append on restart",
          "[testing][contract]") {
    const auto report = krmx::testing::event_store_contract<LosesLastEventOnRestart>();
    INFO(report.str());
    CHECK_FALSE(report.ok());
    // Only the case that restarts fails, and it says what it saw.
    CHECK(report.failed_cases() ==
          std::vector<std::string>{"stored events survive a restart, and positions continue densely"});
    const std::string text = report.str();
    CHECK_THAT(text, Catch::Matchers::Contains(
                         "FAILED: stored events survive a restart, and positions continue densely"));
    CHECK_THAT(text, Catch::Matchers::Contains("store.head_position() == 2"));
    CHECK_THAT(text, Catch::Matchers::Contains("with 1 == 2"));
    CHECK_THAT(text, Catch::Matchers::Contains("krmx/testing/event_store_contract.hpp:"));
    CHECK_THAT(text, Catch::Matchers::Contains("on a memory store that loses its last event on restart"));
}

TEST_CASE("the event store contract catches global positions with a gap", "[testing][contract]") {
    const auto report = krmx::testing::event_store_contract<PositionsWithAGap>();
    INFO(report.str());
    CHECK_FALSE(report.ok());
    for (const char* about_positions : {
             "appended events get dense global positions and 0-based stream revisions",
             "stored events survive a restart, and positions continue densely",
             "a repeated append with the same event ids writes nothing twice",
             "reading all streams after a position comes in bounded batches in position order",
             "a subscription from the start delivers the stored events, then caught_up, then live events",
         }) {
        CAPTURE(about_positions);
        CHECK(report.failed_case(about_positions));
    }
    // Cases that never look past position 2 pass: the report tells the bug from the rest.
    for (const char* unrelated : {
             "an empty store is at position 0 and has no streams",
             "bad input gets a clear error and leaves the store unchanged",
             "an append that expects revision n succeeds only when the stream is at n",
         }) {
        CAPTURE(unrelated);
        CHECK(report.passed_case(unrelated));
    }
    // A failed equality shows both values.
    bool shows_values = false;
    for (const auto& f : report.failures()) {
        if (f.case_name == "appended events get dense global positions and 0-based stream revisions" &&
            f.values.find("first_position 4") != std::string::npos)
            shows_values = true;
    }
    CHECK(shows_values);
    // A check in a loop fails once per event: the report keeps the first failures and counts the rest.
    std::size_t kept = 0;
    std::string last;
    for (const auto& f : report.failures()) {
        if (f.case_name != "reading all streams after a position comes in bounded batches in position order")
            continue;
        ++kept;
        last = f.check;
    }
    CHECK(kept == krmx::testing::ContractChecks::max_failures + 1);
    CHECK_THAT(last,
               Catch::Matchers::StartsWith("... and ") && Catch::Matchers::EndsWith(" more failed checks"));
}

TEST_CASE("a fixture that throws fails every case with its message, without a crash", "[testing][contract]") {
    const auto report = krmx::testing::event_store_contract<NoDatabase>();
    CHECK_FALSE(report.ok());
    CHECK(report.cases().size() == 42);
    CHECK(report.failed_cases().size() == 42);
    REQUIRE_FALSE(report.failures().empty());
    CHECK(report.failures().front().check ==
          "the case threw an exception: could not connect to the database at db.invalid");
    CHECK_THAT(report.str(), Catch::Matchers::Contains("42 cases, 0 passed, 42 failed"));
}

TEST_CASE("a filter runs the cases whose names contain it, and one that matches nothing is no pass",
          "[testing][contract]") {
    const auto subscriptions =
        krmx::testing::event_store_contract<MemoryEvents>({.filter = "a subscription"});
    INFO(subscriptions.str());
    CHECK(subscriptions.ok());
    CHECK(subscriptions.cases().size() == 6);
    for (const auto& c : subscriptions.cases())
        CHECK_THAT(c.name, Catch::Matchers::Contains("a subscription"));

    const auto nothing =
        krmx::testing::event_store_contract<MemoryEvents>({.filter = "no case is called this"});
    CHECK(nothing.cases().empty());
    CHECK_FALSE(nothing.ok());
    CHECK_THAT(nothing.str(),
               Catch::Matchers::Contains("no case matches the filter \"no case is called this\""));
}

TEST_CASE("the checkpoint store contract catches a restart that forgets and a save that is dropped",
          "[testing][contract]") {
    const auto forgets = krmx::testing::checkpoint_store_contract<ForgetsCheckpointsOnRestart>();
    INFO(forgets.str());
    CHECK_FALSE(forgets.ok());
    CHECK(forgets.failed_cases() == std::vector<std::string>{"checkpoints survive a restart"});

    const auto stale = krmx::testing::checkpoint_store_contract<StaleCheckpoints>();
    INFO(stale.str());
    CHECK_FALSE(stale.ok());
    CHECK(stale.failed_cases() == std::vector<std::string>{"saving a checkpoint again replaces it"});
    CHECK_THAT(stale.str(), Catch::Matchers::Contains("loaded->position == 9"));
}

TEST_CASE("the lock provider contract catches locks that let two holders in", "[testing][contract]") {
    const auto report = krmx::testing::lock_provider_contract<TwoHolders>();
    INFO(report.str());
    CHECK_FALSE(report.ok());
    CHECK(report.failed_cases() ==
          std::vector<std::string>{"a held lock keeps every other holder out until it is released",
                                   "write models sharing locks never overlap on an entity"});
    // It still refuses bad names: the report does not blame what works.
    CHECK(report.passed_case("a lock name that breaks the name rule is refused with the rule's reason"));
}

TEST_CASE("a contract report reads as a summary, then each failed check where it was",
          "[testing][contract]") {
    const auto report = krmx::testing::checkpoint_store_contract<StaleCheckpoints>({.filter = "replaces"});
    const std::string text = report.str();
    INFO(text);
    CHECK_THAT(text, Catch::Matchers::StartsWith(
                         "checkpoint store contract on checkpoints that keep the first save: "
                         "1 case, 0 passed, 1 failed (filter \"replaces\")"));
    REQUIRE_FALSE(report.failures().empty());
    const auto& failure = report.failures().front();
    CHECK(failure.case_name == "saving a checkpoint again replaces it");
    CHECK(failure.file == "krmx/testing/checkpoint_store_contract.hpp");
    CHECK(failure.line > 0);
    CHECK(failure.check == "loaded->state == json{{\"counter\", 9}}");
    CHECK(failure.values == R"({"counter":1} == {"counter":9})");
}

}  // namespace contract_tests
