// Kill -9 of a process that appends to SQLite: every acknowledged event survives intact, positions stay
// dense, and nothing half-written is ever read (every record passes its checksum).

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "store_test_support.hpp"

namespace {

struct Acknowledged {
    std::string stream;
    krmx::Revision first_revision;
    krmx::Revision last_revision;
    krmx::Position first_position;
    krmx::Position last_position;
};

// Starts the appender, lets it run until `run_for` after its first acknowledged append, kills it with
// SIGKILL, and returns every append it acknowledged (complete lines only). Counting from the first
// acknowledgement, not from "ready": on a busy disk the first synced commit alone took longer than the
// shortest rounds, which then had nothing to check.
std::vector<Acknowledged> run_and_kill(const std::filesystem::path& file, const std::string& mode,
                                       unsigned seed, std::chrono::milliseconds run_for) {
    krmx::testing::ChildProcess appender{KRMX_CRASH_APPENDER, {file.string(), mode, std::to_string(seed)}};
    const bool ready = appender.wait_for_line("ready", std::chrono::seconds{30}) &&
                       appender.wait_for_lines(2, std::chrono::seconds{30});
    if (ready) appender.read_for(run_for);
    // Whatever the child wrote before it died was acknowledged before it was written.
    const int status = appender.kill_and_wait();
    REQUIRE(ready);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));

    std::vector<Acknowledged> acknowledged;
    for (const auto& line : appender.lines()) {
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
