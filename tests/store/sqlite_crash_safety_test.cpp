// Kill -9 of a process that appends to SQLite: every acknowledged event survives intact, positions stay
// dense, and nothing half-written is ever read (every record passes its checksum).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "catch.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "store_test_support.hpp"

extern char** environ;

namespace {

struct Acknowledged {
    std::string stream;
    krmx::Revision first_revision;
    krmx::Revision last_revision;
    krmx::Position first_position;
    krmx::Position last_position;
};

// Starts the appender, lets it run until `run_for` after it is ready, kills it with SIGKILL, and returns
// every append it acknowledged (complete lines only).
std::vector<Acknowledged> run_and_kill(const std::filesystem::path& file, const std::string& mode,
                                       unsigned seed, std::chrono::milliseconds run_for) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
    const std::string program = KRMX_CRASH_APPENDER;
    const std::string seed_text = std::to_string(seed);
    std::vector<char*> argv{const_cast<char*>(program.c_str()), const_cast<char*>(file.c_str()),
                            const_cast<char*>(mode.c_str()), const_cast<char*>(seed_text.c_str()), nullptr};
    pid_t child = 0;
    const int spawned = posix_spawn(&child, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    REQUIRE(spawned == 0);

    std::string output;
    bool ready = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    char buffer[4096];
    for (;;) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        pollfd fd{pipe_fds[0], POLLIN, 0};
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        if (::poll(&fd, 1, static_cast<int>(std::max<long long>(wait, 1))) > 0) {
            const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
            if (n <= 0) break;  // the child died on its own
            output.append(buffer, static_cast<std::size_t>(n));
            if (!ready && output.find("ready\n") != std::string::npos) {
                ready = true;
                deadline = std::chrono::steady_clock::now() + run_for;
            }
        }
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    // Whatever the child wrote before it died was acknowledged before it was written.
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
        output.append(buffer, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    REQUIRE(ready);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));

    std::vector<Acknowledged> acknowledged;
    std::istringstream lines{output.substr(0, output.rfind('\n') + 1)};
    for (std::string line; std::getline(lines, line);) {
        if (line == "ready") continue;
        std::istringstream fields{line};
        Acknowledged ack;
        fields >> ack.stream >> ack.first_revision >> ack.last_revision >> ack.first_position >>
            ack.last_position;
        REQUIRE_FALSE(fields.fail());
        acknowledged.push_back(ack);
    }
    return acknowledged;
}

nlohmann::json expected_payload(const std::string& stream, krmx::Revision r) {
    return {
        {"stream", stream}, {"revision", r}, {"fill", std::string(r % 700, static_cast<char>('a' + r % 26))}};
}

}  // namespace

TEST_CASE("acknowledged events survive kill -9 of the appending process, intact", "[store][sqlite][crash]") {
    krmx::testing::TempDir dir;
    const auto file = dir.path() / "crash.sqlite";
    std::mt19937 random{20240601};
    std::vector<Acknowledged> all_acknowledged;
    constexpr int rounds = 8;
    for (int round = 0; round < rounds; ++round) {
        const std::string mode = round % 2 == 0 ? "group" : "synced";
        const auto run_for = std::chrono::milliseconds{30 + random() % 400};
        const auto acknowledged = run_and_kill(file, mode, static_cast<unsigned>(round), run_for);
        INFO("round " << round << " (" << mode << ", killed after " << run_for.count() << " ms)");
        CHECK_FALSE(acknowledged.empty());
        all_acknowledged.insert(all_acknowledged.end(), acknowledged.begin(), acknowledged.end());

        // Reopen as the restarted server would, and read every record: each one passes its checksum.
        krmx::SqliteEventStore store{file};
        std::vector<krmx::RecordedEvent> events;
        REQUIRE_NOTHROW(events = store.read_all());
        REQUIRE(events.size() == store.head_position());
        std::map<std::string, krmx::Revision> next_revision;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            REQUIRE(e.position == i + 1);
            REQUIRE(e.revision == next_revision[e.stream]++);
            REQUIRE(e.id == e.stream + "/" + std::to_string(e.revision));
            REQUIRE(e.payload == expected_payload(e.stream, e.revision));
        }
        for (const auto& ack : all_acknowledged) {
            REQUIRE(ack.last_position <= events.size());
            for (krmx::Position p = ack.first_position; p <= ack.last_position; ++p) {
                const auto& e = events[p - 1];
                REQUIRE(e.stream == ack.stream);
                REQUIRE(e.revision == ack.first_revision + (p - ack.first_position));
            }
        }
    }
    CHECK(all_acknowledged.size() > static_cast<std::size_t>(rounds));
}
