// krmx::Logger: the lines people and collectors read, the per-event budget, sinks that fail.

#include <chrono>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/log.hpp>

#include "catch.hpp"

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

}  // namespace

TEST_CASE("JSON lines carry the record and hostile field values stay one line", "[core][log]") {
    std::ostringstream out;
    const krmx::Logger log{krmx::json_log(out)};
    log.warning("link.refused", "a link request was refused",
                {{"reason", "invalid username"}, {"username", "eve\n{\"event\":\"forged\"}\x01"}});
    const auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 1);
    const auto json = nlohmann::json::parse(lines[0]);
    CHECK(json["level"] == "warning");
    CHECK(json["event"] == "link.refused");
    CHECK(json["message"] == "a link request was refused");
    CHECK(json["reason"] == "invalid username");
    CHECK(json["username"] == "eve\n{\"event\":\"forged\"}\x01");
    CHECK(json["time"].get<std::string>().size() == 24);  // 2026-12-06T20:55:00.123Z
    CHECK_FALSE(json.contains("suppressed"));
}

TEST_CASE("human lines quote values that could forge a field or a line", "[core][log]") {
    std::ostringstream out;
    const krmx::Logger log{krmx::human_log(out)};
    log.info("user.kicked", "a user was kicked", {{"username", "alice"}, {"note", "x=1 level=error\nfake line"}});
    const auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find(" info user.kicked: a user was kicked username=alice ") != std::string::npos);
    CHECK(lines[0].ends_with(R"(note="x=1 level=error\nfake line")"));
}

TEST_CASE("records below the sink's level are left out", "[core][log]") {
    std::ostringstream out;
    const krmx::Logger log{krmx::human_log(out, krmx::LogLevel::warning)};
    log.info("server.started", "the server listens");
    log.error("commit.failed", "a commit failed");
    const auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("commit.failed") != std::string::npos);
}

TEST_CASE("each event name has its own budget, and the next line says how many were left out", "[core][log]") {
    std::ostringstream out;
    const krmx::Logger log{krmx::json_log(out), 5};
    for (int i = 0; i < 1000; ++i) log.warning("link.refused", "refused", {{"n", std::to_string(i)}});
    log.info("server.stopping", "stopping");  // another event: its own budget
    const auto lines = lines_of(out.str());
    // The burst is 5; the clock may refill a few more during the loop, never hundreds.
    REQUIRE(lines.size() >= 6);
    CHECK(lines.size() <= 20);
    CHECK(nlohmann::json::parse(lines.back())["event"] == "server.stopping");
    const auto stats = log.statistics();
    CHECK(stats.written + stats.suppressed == 1001);
    CHECK(stats.suppressed >= 980);
    // Once the budget refills, the next line reports what was left out in between.
    std::uint64_t reported = 0;
    for (const auto& line : lines) reported += nlohmann::json::parse(line).value("suppressed", std::uint64_t{0});
    const auto before = reported;
    for (int tries = 0; tries < 300 && reported == before; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
        out.str("");
        log.warning("link.refused", "refused");
        for (const auto& line : lines_of(out.str())) {
            reported += nlohmann::json::parse(line).value("suppressed", std::uint64_t{0});
        }
    }
    CHECK(reported == log.statistics().suppressed);
}

TEST_CASE("a sink that throws is counted and never reaches the caller", "[core][log]") {
    const krmx::Logger log{[](const krmx::LogRecord&) { throw std::runtime_error{"disk full"}; }};
    log.error("commit.failed", "a commit failed");
    log.error("commit.failed", "a commit failed");
    CHECK(log.statistics().sink_errors == 2);
    CHECK(log.statistics().written == 2);
}

TEST_CASE("a default logger writes nothing; copies share the sink and the budget", "[core][log]") {
    const krmx::Logger quiet;
    CHECK_FALSE(quiet);
    quiet.error("commit.failed", "nobody hears this");
    CHECK(quiet.statistics().written == 0);

    std::ostringstream out;
    const krmx::Logger log{krmx::json_log(out), 2};
    const krmx::Logger copy = log;
    log.info("a", "one");
    copy.info("a", "two");
    copy.info("a", "three");  // over the shared budget of 2
    CHECK(lines_of(out.str()).size() == 2);
    CHECK(log.statistics().suppressed == 1);
}
