// The alphabet reducer (examples/alphabet/alphabet.hpp).
#include <krmx/stream/stream.hpp>

#include "alphabet/alphabet.hpp"
#include "catch.hpp"

TEST_CASE("extend appends the next letter, up to z") {
    krmx::Stream<Alphabet> s{alphabet::model()};
    for (int i = 0; i < 26; ++i) REQUIRE(s.dispatch("ann", alphabet::extend()).accepted());
    CHECK(s.state().letters == "abcdefghijklmnopqrstuvwxyz");
    const auto full = s.dispatch("ann", alphabet::extend());
    CHECK(full.outcome() == krmx::Outcome::rejected);
    CHECK(full.reason() == "the alphabet is complete");
    CHECK(s.size() == 26);
}

TEST_CASE("while claimed only the claimer extends, resets and releases") {
    krmx::Stream<Alphabet> s{alphabet::model()};
    (void)s.dispatch("ann", alphabet::extend());
    CHECK(s.dispatch("ben", alphabet::reset()).reason() == "only the claimer can reset");
    REQUIRE(s.dispatch("ann", alphabet::claim()).accepted());
    CHECK(s.dispatch("ben", alphabet::claim()).reason() == "already claimed");
    CHECK(s.dispatch("ben", alphabet::extend()).reason() == "claimed by someone else");
    CHECK(s.dispatch("ben", alphabet::reset()).reason() == "only the claimer can reset");
    CHECK(s.dispatch("ben", alphabet::release()).reason() == "claimed by someone else");
    CHECK(s.dispatch("ann", alphabet::extend()).accepted());
    CHECK(s.state() == Alphabet{"ab", "ann"});
    CHECK(s.dispatch("ann", alphabet::reset()).accepted());
    CHECK(s.state() == Alphabet{"", "ann"});
    CHECK(s.dispatch("ann", alphabet::release()).accepted());
    CHECK(s.dispatch("ben", alphabet::extend()).accepted());
    CHECK(s.state() == Alphabet{"a", std::nullopt});
    CHECK(s.counters().rollbacks == 0);  // guards refuse without writing
}

TEST_CASE("alphabet events take no payload on the wire") {
    krmx::Stream<Alphabet> s{alphabet::model()};
    CHECK(s.dispatch_text("ann", R"({"type":"extend"})").accepted());
    CHECK(s.dispatch_text("ann", R"({"type":"extend","payload":1})").outcome() ==
          krmx::Outcome::invalid_payload);
    CHECK(s.log()[0].event_json().dump() == R"({"type":"extend"})");
}
