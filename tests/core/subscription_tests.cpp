#include <stdexcept>
#include <vector>

#include <krmx/core/clock.hpp>
#include <krmx/core/subscription.hpp>

#include "catch.hpp"

using krmx::detail::Signal;

TEST_CASE("a subscription ends when its handle is destroyed") {
    Signal<int> signal;
    std::vector<int> seen;
    {
        auto sub = signal.connect([&](int v) { seen.push_back(v); });
        signal.emit(1);
    }
    signal.emit(2);
    CHECK(seen == std::vector<int>{1});
    CHECK(signal.empty());
}

TEST_CASE("a subscriber that throws does not stop the others") {
    Signal<int> signal;
    int calls = 0;
    auto a = signal.connect([](int) { throw std::runtime_error("boom"); });
    auto b = signal.connect([&](int) { ++calls; });
    signal.emit(1);
    signal.emit(2);
    CHECK(calls == 2);
    CHECK(signal.errors() == 2);
}

TEST_CASE("a subscriber may cancel itself or subscribe others while being notified") {
    Signal<int> signal;
    std::vector<int> seen;
    krmx::Subscription self;
    krmx::Subscription later;
    self = signal.connect([&](int v) {
        seen.push_back(v);
        self.cancel();
        later = signal.connect([&](int w) { seen.push_back(100 + w); });
    });
    signal.emit(1);
    signal.emit(2);
    CHECK(seen == std::vector<int>{1, 102});
}

TEST_CASE("a handle that outlives its signal is harmless") {
    krmx::Subscription sub;
    {
        Signal<> signal;
        sub = signal.connect([] {});
    }
    CHECK(sub.active());
    sub.cancel();
    CHECK_FALSE(sub.active());
}

TEST_CASE("a manual clock moves only when told") {
    krmx::ManualClock clock;
    const krmx::ClockRef ref{clock};
    const auto t0 = ref.now();
    CHECK(ref.now() == t0);
    clock.advance(std::chrono::seconds{10});
    CHECK(ref.now() - t0 == std::chrono::seconds{10});
    const krmx::ClockRef steady;
    const auto first = steady.now();
    const auto second = krmx::Clock::now();
    CHECK(first <= second);
    const krmx::CoarseSteadyClock coarse;
    const auto fine = krmx::SteadyClock{}.now();
    CHECK(coarse.now() - fine < std::chrono::milliseconds{100});  // same epoch, tick-level resolution
    CHECK(fine - coarse.now() < std::chrono::milliseconds{100});
    const krmx::ClockRef copy = ref;  // a copy refers to the same clock, not to the ClockRef
    clock.advance(std::chrono::seconds{1});
    CHECK(copy.now() == ref.now());
}
