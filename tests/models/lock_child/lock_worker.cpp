// The child of the cross-process lock tests (sqlite_lock_process_tests.cpp). Two modes:
//
// krmx_models_tests --krmx-child krmx_models_lock_worker lend <store file> <lock file> <user> <rounds> <hold ms>
//   Opens the shared SQLite event store and lock file, prints "ready", waits for a line on stdin (so that
//   all workers start together), then lends book 1 `rounds` times through the bookstore's write model,
//   holding each decision for `hold ms`. For every round it prints "<acquired ns> <released ns> <outcome>":
//   when it held the lock (CLOCK_MONOTONIC, one clock for every process of the machine) and what happened
//   (appended, refused, conflict). Ends with "done".
//
// krmx_models_tests --krmx-child krmx_models_lock_worker hold <lock file> <lease ms>
//   Takes the lock of book 1 with the given lease, prints "held" and waits to be killed.

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "bookstore/bookstore.hpp"
#include "krmx/models/sqlite_lock_provider.hpp"
#include "krmx/models/write_model.hpp"
#include "krmx/store/sqlite_event_store.hpp"

#include "test_child.hpp"

namespace child_krmx_models_lock_worker {

namespace {

std::int64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void say(const std::string& line) {
    std::cout << line << '\n' << std::flush;
}

// Wraps the SQLite provider to note when this process held the lock: from just after it was taken to just
// before it is given back, so the interval lies inside the time the lock row was this process's.
class TimedLocks {
  public:
    explicit TimedLocks(krmx::SqliteLockProvider& inner) : inner_(inner) {}

    [[nodiscard]] krmx::Lock acquire(std::string_view key) {
        auto held = std::make_shared<krmx::Lock>(inner_.acquire(key));
        const std::int64_t acquired = monotonic_ns();
        return krmx::Lock{[this, held, acquired] {
            acquired_ns = acquired;
            released_ns = monotonic_ns();
            held->release();
        }};
    }

    std::int64_t acquired_ns = 0;
    std::int64_t released_ns = 0;

  private:
    krmx::SqliteLockProvider& inner_;
};

int lend(const std::string& store_file, const std::string& lock_file, const std::string& user, int rounds,
         std::chrono::milliseconds hold) {
    krmx::SqliteEventStore store{store_file};
    krmx::SqliteLockProvider sqlite_locks{lock_file};
    TimedLocks locks{sqlite_locks};
    auto model = bookstore::book_write_model("1").use_lock(locks);
    say("ready");
    std::string go;
    if (!std::getline(std::cin, go)) return 3;
    for (int round = 0; round < rounds; ++round) {
        std::string outcome;
        try {
            const auto result = model.with_source(store).handle([&](krmx::WriteContext<bookstore::Book>& w) {
                std::this_thread::sleep_for(hold);  // a decision that takes time, so overlaps would show
                w.emit(bookstore::book_lent(bookstore::Lending{"1", user}));
            });
            outcome = result.appended() ? "appended" : "refused";
        } catch (const krmx::WrongExpectedRevision&) {
            outcome = "conflict";
        }
        say(std::to_string(locks.acquired_ns) + " " + std::to_string(locks.released_ns) + " " + outcome);
    }
    say("done");
    return 0;
}

int hold(const std::string& lock_file, std::chrono::milliseconds lease) {
    krmx::SqliteLockProvider locks{lock_file, {.lease = lease}};
    auto lock = locks.acquire(bookstore::stream_of("1"));
    say("held");
    for (;;) ::pause();  // until SIGKILL: the lock row stays behind, as after a crash
}

}  // namespace

int run(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "lend" && argc == 7) {
            return lend(argv[2], argv[3], argv[4], std::stoi(argv[5]),
                        std::chrono::milliseconds{std::stoi(argv[6])});
        }
        if (mode == "hold" && argc == 4) return hold(argv[2], std::chrono::milliseconds{std::stoi(argv[3])});
        std::fprintf(stderr,
                     "usage: %s lend <store file> <lock file> <user> <rounds> <hold ms>\n"
                     "       %s hold <lock file> <lease ms>\n",
                     argv[0], argv[0]);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lock worker: %s\n", e.what());
        return 1;
    }
}

}  // namespace child_krmx_models_lock_worker

KRMX_TEST_CHILD(krmx_models_lock_worker, child_krmx_models_lock_worker::run);
