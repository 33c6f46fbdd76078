// The bookstore example on PostgreSQL: the same binary the SQLite ctest runs, with `--postgres` and the
// connection of this executable's throw-away server. The example checks each step itself and exits 0 only
// when all of them did what they should.
#include <chrono>
#include <string>

#include "catch.hpp"
#include "child_process.hpp"
#include "postgres_server.hpp"

TEST_CASE("the bookstore example runs unchanged on PostgreSQL with one flag", "[examples][postgres]") {
    auto& server = krmx::testing::shared_postgres();
    krmx::testing::ChildProcess bookstore{KRMX_BOOKSTORE_BIN, {"--postgres", server.conninfo()}};
    const bool ended = bookstore.read_to_end(std::chrono::seconds{120});
    INFO(bookstore.output());
    REQUIRE(ended);
    CHECK(bookstore.exited_cleanly());
    CHECK(bookstore.output().find("on PostgreSQL, schema bookstore_example_") != std::string::npos);
    CHECK(bookstore.output().find("FAIL") == std::string::npos);
    CHECK(bookstore.output().find("all good") != std::string::npos);
}
