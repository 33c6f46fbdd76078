// The event store contract (krmx/testing/event_store_contract.hpp, the suite users run on their own stores),
// run on every store of ours (EventStoreFixtures), and what the contract says of errors without a store.

#include <optional>
#include <string>

#include "catch.hpp"
#include "krmx/testing/event_store_contract.hpp"
#include "store_test_support.hpp"

using krmx::ExpectedRevision;
using krmx::testing::EventStoreFixtures;

TEMPLATE_LIST_TEST_CASE("the store keeps the event store contract", "[store][contract]", EventStoreFixtures) {
    STATIC_REQUIRE(krmx::testing::EventStoreFixture<TestType>);
    const auto report = krmx::testing::event_store_contract<TestType>();
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.failed_cases().empty());
    // Our stores count failed error handlers: no case is skipped.
    CHECK_FALSE(report.skipped_case("an on_error handler that throws is counted in the store's statistics"));
}

TEST_CASE("store errors show a name with NUL characters or bytes that are not UTF-8 whole, escaped",
          "[store][names]") {
    const std::string name{"a\0b\xff\"", 5};
    const krmx::WrongExpectedRevision wrong{name, ExpectedRevision::exact(3), std::nullopt};
    CHECK(std::string{wrong.what()} == R"(stream "a\u0000b\xff\"" expected revision 3 but is at no stream)");
    CHECK(wrong.stream() == name);
    const krmx::DuplicateEventId duplicate{name, 9};
    CHECK(std::string{duplicate.what()} ==
          R"(event id "a\u0000b\xff\"" is already stored for a different event at position 9)");
    CHECK(duplicate.event_id() == name);
}
