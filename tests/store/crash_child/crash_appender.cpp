// The child of the crash-safety test: appends to an SQLite store in a loop, from a few threads, and
// reports every acknowledged append on stdout, one line each: "<stream> <first revision> <last revision>
// <first position> <last position>". The parent kills it with SIGKILL at a random moment.
//
// Event content is a pure function of (stream, revision), so the parent can check every stored byte.
// Usage: krmx_store_tests --krmx-child krmx_store_crash_appender <file> <synced|group> <seed>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "krmx/store/sqlite_event_store.hpp"

#include "test_child.hpp"

namespace child_krmx_store_crash_appender {

namespace {

std::mutex output_mutex;

void report(const std::string& line) {
    // write(2), not stdio: once an append is acknowledged its line must reach the pipe before anything else.
    std::lock_guard lock{output_mutex};
    std::size_t written = 0;
    while (written < line.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, line.data() + written, line.size() - written);
        if (n <= 0) std::_Exit(3);
        written += static_cast<std::size_t>(n);
    }
}

}  // namespace

int run(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s <file> <synced|group> <seed>\n", argv[0]);
        return 2;
    }
    const std::string mode = argv[2];
    const auto seed = static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10));
    krmx::SqliteEventStore store{argv[1],
                                 {.durability = mode == "synced" ? krmx::SqliteDurability::synced
                                                                 : krmx::SqliteDurability::group_commit}};
    report("ready\n");
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&store, t, seed] {
            std::mt19937 random{seed * 31 + static_cast<unsigned>(t)};
            const std::string stream = "crash-" + std::to_string(t);
            auto revision = store.stream_revision(stream);
            for (;;) {
                const krmx::Revision first = revision ? *revision + 1 : 0;
                const auto count = 1 + random() % 4;
                std::vector<krmx::NewEvent> events;
                for (krmx::Revision r = first; r < first + count; ++r) {
                    krmx::NewEvent event;
                    event.id = stream + "/" + std::to_string(r);
                    event.type = "step";
                    // Sizes vary, so records straddle pages and the log grows between checkpoints.
                    event.payload =
                        nlohmann::json{{"stream", stream},
                                       {"revision", r},
                                       {"fill", std::string(r % 700, static_cast<char>('a' + r % 26))}};
                    event.dispatcher = "crash-test";
                    events.push_back(std::move(event));
                }
                const auto expected =
                    revision ? krmx::ExpectedRevision::exact(*revision) : krmx::ExpectedRevision::no_stream();
                const auto result = store.append(stream, expected, events);
                revision = result.last_revision;
                report(stream + " " + std::to_string(result.first_revision) + " " +
                       std::to_string(result.last_revision) + " " + std::to_string(result.first_position) +
                       " " + std::to_string(result.last_position) + "\n");
            }
        });
    }
    for (auto& thread : threads) thread.join();  // never: the appenders run until the process is killed
    return 0;
}

}  // namespace child_krmx_store_crash_appender

KRMX_TEST_CHILD(krmx_store_crash_appender, child_krmx_store_crash_appender::run);
