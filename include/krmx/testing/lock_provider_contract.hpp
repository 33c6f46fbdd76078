#pragma once
// krmx::testing::lock_provider_contract<Fixture>(): the contract every krmx lock provider keeps (one holder
// per name at a time, write models that share locks never overlap, the name rule), run on your provider.
// krmx runs the same suite on its in-process, SQLite and PostgreSQL providers.
//
// The fixture gives two providers that share their locks, as two processes would (for a provider of one
// process's threads, the same provider twice); every case makes a fresh fixture:
//
//   struct MyLocksFixture {
//       static constexpr const char* name = "my locks";    // optional: names the report
//       MyLockProvider& first();
//       MyLockProvider& second();    // shares the locks of first()
//   };
//   const krmx::testing::ContractReport report = krmx::testing::lock_provider_contract<MyLocksFixture>();
//
// A provider that never hands a lock out again fails the case that waits for it (after a time limit)
// instead of hanging the suite: the waiting thread is left behind, keeping what it uses alive.

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "krmx/core/event_type.hpp"
#include "krmx/models/event_catalog.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/models/write_model.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "krmx/store/names.hpp"
#include "krmx/testing/contract.hpp"
#include "krmx/testing/detail/contract_events.hpp"

namespace krmx::testing {

namespace detail {
template <class Fixture>
concept shares_locks = requires(Fixture& fixture) {
    requires LockProvider<std::remove_reference_t<decltype(fixture.first())>>;
    requires LockProvider<std::remove_reference_t<decltype(fixture.second())>>;
    { fixture.first() } -> std::same_as<std::remove_reference_t<decltype(fixture.first())>&>;
    { fixture.second() } -> std::same_as<std::remove_reference_t<decltype(fixture.second())>&>;
};
}  // namespace detail

/// What lock_provider_contract runs on: default-constructible (every case makes a fresh one), `first()` and
/// `second()` give krmx::LockProviders by reference that share their locks.
template <class Fixture>
concept LockProviderFixture = std::default_initializable<Fixture> && detail::shares_locks<Fixture>;

namespace detail::lock_provider_cases {

/// How long a case waits for a lock that a correct provider hands out at once.
inline constexpr std::chrono::seconds patience{20};

/// Runs `body(shared, i)` on `count` threads; whether all of them finished within `patience`. Threads that
/// did not are left running (detached), `shared` kept alive for them, so that a lock that is never handed
/// out fails the case instead of hanging the suite.
template <class Shared, class Body>
bool run_threads(const std::shared_ptr<Shared>& shared, int count, Body body) {
    struct Done {
        std::mutex mutex;
        std::condition_variable changed;
        int finished = 0;
    };
    auto done = std::make_shared<Done>();
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i) {
        threads.emplace_back([shared, done, body, i] {
            try {
                body(*shared, i);
            } catch (...) {
                // the body counts what it expects; anything else shows in those counts
            }
            {
                std::lock_guard lock{done->mutex};
                ++done->finished;
            }
            done->changed.notify_all();
        });
    }
    bool all = false;
    {
        std::unique_lock lock{done->mutex};
        all = done->changed.wait_for(lock, patience, [&] { return done->finished == count; });
    }
    for (auto& thread : threads) {
        if (all) {
            thread.join();
        } else {
            thread.detach();
        }
    }
    return all;
}

inline constexpr EventType<int> taken{"lock-contract.taken"};

template <class Fixture>
void one_holder_at_a_time(ContractChecks& c) {
    struct Shared {
        Fixture fixture;
        std::atomic<bool> released{false};
        std::atomic<bool> got{false};
        std::atomic<bool> entered_early{false};
    };
    const auto shared = std::make_shared<Shared>();
    const std::string name = "lock-contract-1";
    Lock held = shared->fixture.first().acquire(name);
    KRMX_CHECK(c, held.held());
    bool finished = false;
    std::thread starter{[&] {
        finished = run_threads(shared, 1, [name](Shared& s, int) {
            Lock lock = s.fixture.second().acquire(name);
            if (!s.released) s.entered_early = true;
            s.got = true;
        });
    }};
    // The other provider waits as long as the first holds the lock.
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
    KRMX_CHECK_FALSE(c, shared->got.load());
    shared->released = true;
    held.release();
    KRMX_CHECK_FALSE(c, held.held());
    starter.join();
    KRMX_CHECK(c, finished);
    KRMX_CHECK(c, shared->got.load());
    KRMX_CHECK_FALSE(c, shared->entered_early.load());

    // A lock that goes out of scope is released too, and a lock on another name changes nothing.
    { const Lock scoped = shared->fixture.first().acquire(name); }
    const Lock other = shared->fixture.first().acquire("lock-contract-2");
    KRMX_CHECK(c, other.held());
    KRMX_CHECK(c, run_threads(shared, 1, [name](Shared& s, int) {
                   const Lock again = s.fixture.second().acquire(name);
               }));
}

template <class Fixture>
void write_models_never_overlap(ContractChecks& c) {
    struct Shared {
        Fixture fixture;
        MemoryEventStore store;
        EventCatalog catalog = EventCatalog{"lock contract", 1}.add(taken);
        std::atomic<int> inside{0};
        std::atomic<bool> overlapped{false};
        std::atomic<int> appended{0};
        std::atomic<int> conflicts{0};
    };
    const auto shared = std::make_shared<Shared>();
    // Four threads decide on one entity five times each, thread t locking through first() or second().
    const bool finished = run_threads(shared, 4, [](Shared& s, int t) {
        const LockProviderRef provider =
            t % 2 == 0 ? LockProviderRef{s.fixture.first()} : LockProviderRef{s.fixture.second()};
        const auto model = WriteModel<int>{"lock-contract", s.catalog}
                               .reduce([](int& count, const CatalogEvent&) { ++count; })
                               .on_stream("lock-contract-entity")
                               .use_lock(provider);
        for (int i = 0; i < 5; ++i) {
            try {
                const auto result = model.with_source(s.store).handle([&](WriteContext<int>& w) {
                    if (s.inside.fetch_add(1) > 0) s.overlapped = true;
                    std::this_thread::sleep_for(std::chrono::milliseconds{2});
                    w.emit(taken(t));
                    s.inside.fetch_sub(1);
                });
                if (result.appended()) ++s.appended;
            } catch (const WrongExpectedRevision&) {
                ++s.conflicts;
            }
        }
    });
    KRMX_CHECK(c, finished);
    KRMX_CHECK_FALSE(c, shared->overlapped.load());
    KRMX_CHECK_EQ(c, shared->appended.load(), 20);
    KRMX_CHECK_EQ(c, shared->conflicts.load(), 0);
    KRMX_CHECK_EQ(c, shared->store.stream_revision("lock-contract-entity"), 19);
}

template <class Fixture>
void name_rule(ContractChecks& c) {
    Fixture fixture;
    auto& provider = fixture.first();
    for (const std::string& name :
         {std::string{}, std::string(max_name_bytes + 1, 'x'), random_name(3000, 1),
          std::string{"book\0-1", 7}, std::string{"book-\xff"}, std::string{"\xc3"}}) {
        const auto scope = c.info("locking ", krmx::detail::quoted(name.substr(0, 80)));
        const auto problem = krmx::detail::name_problem("lock name", name);
        KRMX_REQUIRE(c, problem.has_value());
        try {
            (void)provider.acquire(name);
            (void)c.record(false, "a lock was handed out for a name that breaks the rule", {}, __FILE__,
                           __LINE__);
        } catch (const std::invalid_argument& e) {
            KRMX_CHECK_EQ(c, std::string{e.what()}, *problem);
        }
        if constexpr (requires { provider.try_acquire(name); }) {
            try {
                (void)provider.try_acquire(name);
                (void)c.record(false, "try_acquire handed out a lock for a name that breaks the rule", {},
                               __FILE__, __LINE__);
            } catch (const std::invalid_argument& e) {
                KRMX_CHECK_EQ(c, std::string{e.what()}, *problem);
            }
        }
    }
    // Names up to the limit, in any script, are locks like any other.
    for (const std::string& name : {random_name(max_name_bytes, 2), std::string{"bücher/übersicht ✓"}}) {
        const auto scope = c.info("locking a name of ", name.size(), " bytes");
        auto lock = provider.acquire(name);
        KRMX_CHECK(c, lock.held());
        lock.release();
        KRMX_CHECK(c, fixture.second().acquire(name).held());
    }
}

template <class Fixture>
inline constexpr contract::Case cases[] = {
    {"a held lock keeps every other holder out until it is released", &one_holder_at_a_time<Fixture>},
    {"write models sharing locks never overlap on an entity", &write_models_never_overlap<Fixture>},
    {"a lock name that breaks the name rule is refused with the rule's reason", &name_rule<Fixture>},
};

}  // namespace detail::lock_provider_cases

/// Runs the lock provider contract on fresh fixtures of `Fixture` (every case makes its own); the cases
/// whose name contains `options.filter` only, when it is set.
template <class Fixture>
[[nodiscard]] ContractReport lock_provider_contract(const ContractOptions& options = {}) {
    if constexpr (LockProviderFixture<Fixture>) {
        return detail::contract::Runner::run("lock provider contract",
                                             detail::contract::subject_name<Fixture>(),
                                             detail::lock_provider_cases::cases<Fixture>, options);
    } else {
        static_assert(
            std::default_initializable<Fixture>,
            "krmx::testing::lock_provider_contract<Fixture>: the fixture must be default-constructible "
            "(every case makes a fresh one)");
        static_assert(detail::shares_locks<Fixture>,
                      "krmx::testing::lock_provider_contract<Fixture>: the fixture needs `first()` and "
                      "`second()`, each giving a krmx::LockProvider by reference (see the concept in "
                      "krmx/models/lock_provider.hpp); the two share their locks");
        return {};
    }
}

}  // namespace krmx::testing
