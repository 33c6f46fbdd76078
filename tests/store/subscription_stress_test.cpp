// Concurrent writers and subscribers: delivery is dense and in position order, with no gap and no
// duplicate, whenever a subscriber joins.

#include <atomic>
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "store_test_support.hpp"

using krmx::ExpectedRevision;
using krmx::NewEvent;
using krmx::Position;
using krmx::RecordedEvent;
using krmx::SubscribeFrom;
using krmx::testing::event;
using krmx::testing::EventStoreFixtures;

namespace {

// Checks order inside the callback, where a violation happens, and keeps what it saw.
class OrderChecker {
  public:
    // Without `after` (a subscription from the end), the first delivery fixes where it starts.
    explicit OrderChecker(std::optional<Position> after)
        : last_(after.value_or(0)), first_expected_(after.value_or(0) + 1), known_start_(after.has_value()) {}

    krmx::SubscriptionHandlers handlers() {
        return {.on_event =
                    [this](const RecordedEvent& e) {
                        if (!known_start_ && count_ == 0) {
                            last_ = e.position - 1;
                            first_expected_ = e.position;
                        }
                        if (e.position != last_ + 1) ++violations_;
                        last_ = e.position;
                        ++count_;
                        if (caught_up_ > 0) ++live_;
                    },
                .on_caught_up = [this] { ++caught_up_; },
                .on_error =
                    [this](std::exception_ptr) {
                        ++errors_;
                    }};
    }

    bool wait_until(Position head) const {
        for (int i = 0; i < 3000; ++i) {
            if (last_.load() >= head) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        }
        return false;
    }

    std::atomic<Position> last_;
    std::atomic<Position> first_expected_;
    bool known_start_;
    std::atomic<int> violations_{0};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> live_{0};
    std::atomic<int> caught_up_{0};
    std::atomic<int> errors_{0};
};

}  // namespace

TEMPLATE_LIST_TEST_CASE("live subscribers never see position n+1 before n while several threads append",
                        "[store][stress]", EventStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    constexpr int writers = 6;
    constexpr int appends_per_writer = 250;

    // Some history before anyone subscribes, so early subscribers have something to catch up on.
    for (int i = 0; i < 40; ++i)
        (void)store.append("history", ExpectedRevision::any(), event("old", {{"i", i}}));

    std::vector<std::unique_ptr<OrderChecker>> checkers;
    std::vector<krmx::Subscription> subscriptions;
    const auto subscribe = [&](SubscribeFrom from) {
        checkers.push_back(
            std::make_unique<OrderChecker>(from.is_end() ? std::nullopt : std::optional{from.position()}));
        subscriptions.push_back(store.subscribe(from, checkers.back()->handlers()));
    };
    subscribe(SubscribeFrom::start());
    subscribe(SubscribeFrom::after(17));

    std::atomic<int> finished{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            std::mt19937 random{static_cast<unsigned>(w)};
            for (int i = 0; i < appends_per_writer; ++i) {
                const int size = 1 + static_cast<int>(random() % 4);
                std::vector<NewEvent> batch;
                for (int k = 0; k < size; ++k) batch.push_back(event("e", {{"w", w}, {"i", i}, {"k", k}}));
                // Half the writers share a stream, so expected-revision checks interleave with the others.
                const std::string stream = w % 2 == 0 ? "shared" : "own-" + std::to_string(w);
                (void)store.append(stream, ExpectedRevision::any(), batch);
            }
            ++finished;
        });
    }
    // Subscribers that join while the writers run, from the start, mid-log and the end.
    std::mt19937 random{42};
    for (int joined = 0; joined < 4; ++joined) {
        std::this_thread::sleep_for(std::chrono::milliseconds{5 + random() % 20});
        const Position head = store.head_position();
        switch (joined % 3) {
            case 0:
                subscribe(SubscribeFrom::start());
                break;
            case 1:
                subscribe(SubscribeFrom::after(head / 2));
                break;
            default:
                subscribe(SubscribeFrom::end());
                break;
        }
    }
    for (auto& thread : threads) thread.join();
    REQUIRE(finished == writers);

    const Position head = store.head_position();
    const auto all = store.read_all();
    REQUIRE(all.size() == head);
    for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].position == i + 1);

    for (const auto& checker : checkers) {
        if (!checker->known_start_) {
            // A subscription from the end that joined after the last append has nothing to deliver.
            for (int i = 0; i < 20 && checker->count_ == 0; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds{10});
            if (checker->count_ == 0) {
                CHECK(checker->caught_up_ == 1);
                continue;
            }
        }
        REQUIRE(checker->wait_until(head));
        CHECK(checker->violations_ == 0);
        CHECK(checker->errors_ == 0);
        CHECK(checker->caught_up_ == 1);
        CHECK(checker->count_ == head - (checker->first_expected_ - 1));
    }
    // The first subscriber was there from the start: it saw the writers' events live.
    CHECK(checkers.front()->live_ > 0);
}
