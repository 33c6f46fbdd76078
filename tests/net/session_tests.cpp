// The Krmx session layer without sockets: every link check and its reason, whole frame transcripts of
// link, relink, unlink, leave, kick, dropped connections and close, authentication now, later and never,
// link deadlines, bad input, and StreamDomain and ProjectionDomain running on the session unchanged.
#if defined(__GNUC__) && !defined(__clang__)
// g++ 12 warns inside libstdc++'s <regex> at -O1 with sanitizers (GCC bug 105562): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include <krmx/net/session.hpp>
#include <krmx/net/username.hpp>
#include <krmx/stream/projection_model.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/projection_domain.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"

using namespace std::chrono_literals;
using krmx::net::CloseReason;
using krmx::net::ConnectionId;
using krmx::net::Session;

namespace {

// Records what the session sends, per connection, and what it closes.
struct RecordingSink final : krmx::net::SessionSink {
    void send(ConnectionId c, krmx::net::SharedText text) override {
        frames[c].push_back(*text);
        shared[c].push_back(text);
    }
    void close(ConnectionId c, CloseReason reason) override { closed.emplace_back(c, reason); }

    /// The frames of a connection since the last take, then forgets them.
    std::vector<std::string> take(ConnectionId c) {
        auto out = std::move(frames[c]);
        frames[c].clear();
        shared[c].clear();
        return out;
    }
    void clear() {
        frames.clear();
        shared.clear();
    }

    std::map<ConnectionId, std::vector<std::string>> frames;
    std::map<ConnectionId, std::vector<krmx::net::SharedText>> shared;
    std::vector<std::pair<ConnectionId, CloseReason>> closed;
};

std::string link_frame(std::string_view user, std::string_view version = "0.5.4") {
    return R"({"type":"krmx/link","payload":{"username":")" + std::string{user} + R"(","version":")" +
           std::string{version} + R"("}})";
}
std::string link_auth(std::string_view user, std::string_view auth) {
    return R"({"type":"krmx/link","payload":{"username":")" + std::string{user} +
           R"(","version":"0.5.4","auth":")" + std::string{auth} + R"("}})";
}
std::string user_frame(std::string_view type, std::string_view user) {
    return R"({"type":"krmx/)" + std::string{type} + R"(","payload":{"username":")" + std::string{user} +
           R"("}})";
}
std::string joined(std::string_view u) {
    return user_frame("joined", u);
}
std::string linked(std::string_view u) {
    return user_frame("linked", u);
}
std::string unlinked(std::string_view u) {
    return user_frame("unlinked", u);
}
std::string left(std::string_view u) {
    return user_frame("left", u);
}
std::string rejected(std::string_view reason) {
    return R"({"type":"krmx/rejected","payload":{"reason":")" + std::string{reason} + R"("}})";
}
const std::string accepted = R"({"type":"krmx/accepted"})";

using Frames = std::vector<std::string>;

struct Fixture {
    explicit Fixture(krmx::net::SessionOptions options = {}) : session(sink, std::move(options), clock) {}
    ConnectionId linked_user(std::string_view name) {
        const auto c = session.connect();
        session.receive(c, link_frame(name));
        REQUIRE(session.linked(name));
        return c;
    }
    krmx::ManualClock clock;
    RecordingSink sink;
    Session session;
};

}  // namespace

TEST_CASE("usernames follow the Krmx rule", "[net][session]") {
    using krmx::net::is_krmx_username;
    for (const char* good :
         {"ab", "alice", "a1", "Bob_the.builder", "x@y.z", "a-b-c-d", "aBCDEFGHIJKLMNOPQRSTUVWXYZ012345"}) {
        CHECK(is_krmx_username(good));
    }
    for (const char* bad : {"", "a", "1a", "_a", "a_", "a..b", "a._b", "a@-b", "ab ", "a b", "a\"b",
                            "caf\xc3\xa9", "aBCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "a.", ".a", "-ab", "ab-"}) {
        CHECK_FALSE(is_krmx_username(bad));
    }
}

TEST_CASE("the username rule agrees with the Krmx regex on random names", "[net][session]") {
    // std::regex's ECMAScript grammar has negative lookahead: the @krmx/server regex, verbatim, is the
    // oracle.
    const std::regex krmx_regex{R"(^[a-zA-Z](?!.*[._@-]{2})[a-zA-Z0-9._@-]{0,30}[a-zA-Z0-9]$)"};
    std::mt19937 random{42};
    const std::string alphabet = "aZ09._@- !\xc3";
    std::uniform_int_distribution<std::size_t> length{0, 35};
    std::uniform_int_distribution<std::size_t> pick{0, alphabet.size() - 1};
    int valid = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string name;
        const auto n = length(random);
        for (std::size_t k = 0; k < n; ++k) name += alphabet[pick(random)];
        if (i % 2 == 0 && !name.empty()) name[0] = 'q';  // more names that can pass
        const bool expected = std::regex_match(name, krmx_regex);
        valid += expected ? 1 : 0;
        INFO(name);
        REQUIRE(krmx::net::is_krmx_username(name) == expected);
    }
    CHECK(valid > 100);
}

TEST_CASE("every link check in order, with its exact reason, and the connection stays open",
          "[net][session]") {
    krmx::net::SessionOptions options;
    options.authenticate = [](const krmx::net::LinkRequest& r, krmx::net::LinkDecision d) {
        if (r.auth && *r.auth == "secret") {
            d.accept();
        } else {
            d.reject("bad token for " + r.username);
        }
    };
    Fixture f{options};
    const auto alice = f.session.connect();
    f.session.receive(alice, link_auth("alice", "secret"));
    f.sink.clear();
    const auto c = f.session.connect();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not json", "invalid message"},
        {"", "invalid message"},
        {"[1,2]", "invalid message"},
        {R"("krmx/link")", "invalid message"},
        {R"({"payload":{}})", "invalid message"},
        {R"({"type":3})", "invalid message"},
        {R"({"type":"krmx/link"} trailing)", "invalid message"},
        {R"({"type":"krmx/link","type":null})", "invalid message"},  // the last duplicate wins
        {R"({"type":"hello"})", "unlinked connection"},
        {R"({"type":"krmx/unlink"})", "unlinked connection"},
        {R"({"type":"krmx/leave"})", "unlinked connection"},
        {R"({"type":"krmx/link"})", "invalid link request"},
        {R"({"type":"krmx/link","payload":null})", "invalid link request"},
        {R"({"type":"krmx/link","payload":[]})", "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":"bob"}})", "invalid link request"},
        {R"({"type":"krmx/link","payload":{"version":"0.5.4"}})", "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":1,"version":"0.5.4"}})", "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":"bob","version":5}})", "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":"bob","version":"0.5.4","auth":null}})",
         "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":"bob","version":"0.5.4","auth":7}})",
         "invalid link request"},
        {R"({"type":"krmx/link","payload":{"username":"b","version":"0.4.0"}})",
         "krmx server version mismatch (server=0.5.*,client=0.4.0)"},
        {R"({"type":"krmx/link","payload":{"username":"b","version":""}})",
         "krmx server version mismatch (server=0.5.*,client=)"},
        {R"({"type":"krmx/link","payload":{"username":"b","version":"0.5.4"}})", "invalid username"},
        {R"({"type":"krmx/link","payload":{"username":"alice","version":"0.5.4","auth":"secret"}})",
         "user alice is already linked to a connection"},
        {R"({"type":"krmx/link","payload":{"username":"bob","version":"0.5.4","auth":"wrong"}})",
         "bad token for bob"},
        {R"({"type":"krmx/link","payload":{"username":"bob","version":"0.5.4"}})", "bad token for bob"},
    };
    for (const auto& [frame, reason] : cases) {
        INFO(frame);
        f.session.receive(c, frame);
        CHECK(f.sink.take(c) == Frames{rejected(reason)});
        CHECK(f.sink.take(alice).empty());
        CHECK(f.session.open(c));
        CHECK_FALSE(f.session.user_of(c));
    }
    f.session.accept_new_users(false);
    f.session.receive(c, link_auth("bob", "secret"));
    CHECK(f.sink.take(c) == Frames{rejected("server is not accepting new users")});
    // ...and a known user may still relink.
    f.session.receive(alice, R"({"type":"krmx/unlink"})");
    f.sink.clear();
    f.session.receive(c, link_auth("alice", "secret"));
    CHECK(f.sink.take(c) == Frames{accepted, joined("alice"), linked("alice")});
    const auto& s = f.session.statistics();
    CHECK(s.rejected_invalid_message == 8);
    CHECK(s.rejected_unlinked_connection == 3);
    CHECK(s.rejected_invalid_link_request == 9);
    CHECK(s.rejected_version == 2);
    CHECK(s.rejected_username == 1);
    CHECK(s.rejected_already_linked == 1);
    CHECK(s.rejected_authentication == 2);
    CHECK(s.rejected_not_accepting == 1);
    CHECK(s.rejected() == 27);
}

TEST_CASE("checks come in the protocol's order when several fail", "[net][session]") {
    Fixture f;
    (void)f.linked_user("alice");
    f.session.accept_new_users(false);
    const auto c = f.session.connect();
    // version before username before new-user before already-linked
    f.session.receive(c, link_frame("1bad", "1.0"));
    f.session.receive(c, link_frame("1bad", "0.5"));
    f.session.receive(c, link_frame("newbie", "0.5.9"));
    f.session.receive(c, link_frame("alice", "0.5.9"));
    CHECK(f.sink.take(c) == Frames{rejected("krmx server version mismatch (server=0.5.*,client=1.0)"),
                                   rejected("invalid username"),
                                   rejected("server is not accepting new users"),
                                   rejected("user alice is already linked to a connection")});
}

TEST_CASE("a configurable version prefix and username predicate", "[net][session]") {
    krmx::net::SessionOptions options;
    options.version_prefix = "1.2";
    options.is_valid_username = [](std::string_view u) {
        if (u == "boom") throw std::runtime_error("predicate failed");
        return u.size() == 1;
    };
    Fixture f{options};
    const auto c = f.session.connect();
    f.session.receive(c, link_frame("x", "0.5.4"));
    f.session.receive(c, link_frame("boom", "1.2.0"));
    f.session.receive(c, link_frame("xy", "1.2.0"));
    f.session.receive(c, link_frame("x", "1.2.0"));
    CHECK(f.sink.take(c) == Frames{rejected("krmx server version mismatch (server=1.2.*,client=0.5.4)"),
                                   rejected("invalid username"), rejected("invalid username"), accepted,
                                   joined("x"), linked("x")});
}

TEST_CASE("whole transcripts: link, second link, relink, unlink, leave, dropped connection",
          "[net][session]") {
    Fixture f;
    std::vector<std::string> hooks;
    auto s1 = f.session.on_join([&](std::string_view u) { hooks.push_back("join " + std::string{u}); });
    auto s2 = f.session.on_link([&](std::string_view u) { hooks.push_back("link " + std::string{u}); });
    auto s3 = f.session.on_unlink([&](std::string_view u) { hooks.push_back("unlink " + std::string{u}); });
    auto s4 = f.session.on_leave([&](std::string_view u) { hooks.push_back("leave " + std::string{u}); });

    const auto a = f.session.connect();
    f.session.receive(a, link_frame("alice"));
    CHECK(f.sink.take(a) == Frames{accepted, joined("alice"), linked("alice")});

    // docs/protocol.md's example: bob links while alice is linked.
    const auto b = f.session.connect();
    f.session.receive(b, link_frame("bob"));
    CHECK(f.sink.take(b) == Frames{accepted, joined("alice"), linked("alice"), joined("bob"), linked("bob")});
    CHECK(f.sink.take(a) == Frames{joined("bob"), linked("bob")});

    // bob unlinks: everyone linked hears it, bob too; bob stays known, the socket stays open.
    f.session.receive(b, R"({"type":"krmx/unlink"})");
    CHECK(f.sink.take(a) == Frames{unlinked("bob")});
    CHECK(f.sink.take(b) == Frames{unlinked("bob")});
    CHECK(f.session.known("bob"));
    CHECK(f.session.open(b));

    // carol links while bob is known but not linked: she sees joined bob, without linked bob.
    const auto c = f.session.connect();
    f.session.receive(c, link_frame("carol"));
    CHECK(f.sink.take(c) == Frames{accepted, joined("alice"), linked("alice"), joined("bob"), joined("carol"),
                                   linked("carol")});
    CHECK(f.sink.take(a) == Frames{joined("carol"), linked("carol")});
    CHECK(f.sink.take(b).empty());

    // bob relinks from his old socket: no joined broadcast, his place in the join order kept.
    f.session.receive(b, link_frame("bob"));
    CHECK(f.sink.take(b) == Frames{accepted, joined("alice"), linked("alice"), joined("bob"), linked("bob"),
                                   joined("carol"), linked("carol")});
    CHECK(f.sink.take(a) == Frames{linked("bob")});
    CHECK(f.sink.take(c) == Frames{linked("bob")});

    // alice leaves: unlinked to all (herself included), left to her, then left to the others.
    f.session.receive(a, R"({"type":"krmx/leave"})");
    CHECK(f.sink.take(a) == Frames{unlinked("alice"), left("alice")});
    CHECK(f.sink.take(b) == Frames{unlinked("alice"), left("alice")});
    CHECK(f.sink.take(c) == Frames{unlinked("alice"), left("alice")});
    CHECK_FALSE(f.session.known("alice"));

    // carol's socket drops: the others hear unlinked; carol's closed connection gets nothing.
    f.session.disconnect(c);
    CHECK(f.sink.take(b) == Frames{unlinked("carol")});
    CHECK(f.sink.take(c).empty());
    CHECK(f.session.known("carol"));

    // carol reconnects on a new socket under the same name.
    const auto c2 = f.session.connect();
    f.session.receive(c2, link_frame("carol"));
    CHECK(f.sink.take(c2) ==
          Frames{accepted, joined("bob"), linked("bob"), joined("carol"), linked("carol")});
    CHECK(f.sink.take(b) == Frames{linked("carol")});

    CHECK(hooks == std::vector<std::string>{"join alice", "link alice", "join bob", "link bob", "unlink bob",
                                            "join carol", "link carol", "link bob", "unlink alice",
                                            "leave alice", "unlink carol", "link carol"});
    const auto users = f.session.users();
    REQUIRE(users.size() == 2);
    CHECK(users[0].username == "bob");
    CHECK(users[1].username == "carol");
    CHECK(f.session.linked_count() == 2);
}

TEST_CASE("a linked connection: link, unlink, other krmx types and bad frames unlink; leave leaves",
          "[net][session]") {
    for (const std::string& frame :
         {std::string{R"({"type":"krmx/link","payload":{"username":"zed","version":"0.5.4"}})"},
          std::string{R"({"type":"krmx/unlink"})"}, std::string{R"({"type":"krmx/whatever"})"},
          std::string{"{broken"}, std::string{"[]"}, std::string{R"({"type":1})"}, std::string{"\"x\""}}) {
        INFO(frame);
        Fixture f;
        const auto a = f.linked_user("alice");
        const auto b = f.linked_user("bob");
        f.sink.clear();
        f.session.receive(a, frame);
        CHECK(f.sink.take(a) == Frames{unlinked("alice")});
        CHECK(f.sink.take(b) == Frames{unlinked("alice")});
        CHECK(f.session.known("alice"));
        CHECK_FALSE(f.session.linked("alice"));
        CHECK_FALSE(f.session.known("zed"));
    }
}

TEST_CASE("custom messages reach the application as received; nothing is echoed", "[net][session]") {
    Fixture f;
    std::vector<std::pair<std::string, std::string>> got;
    auto sub = f.session.on_message(
        [&](std::string_view u, const krmx::Message& m) { got.emplace_back(u, m.text()); });
    const auto a = f.linked_user("alice");
    const auto b = f.linked_user("bob");
    f.sink.clear();
    const std::string text = R"({"type":"chat","payload":{"text":"hi \u00e9","n":1.50}})";
    f.session.receive(a, text);
    f.session.receive(b, R"({"type":"ping"})");
    CHECK(got ==
          std::vector<std::pair<std::string, std::string>>{{"alice", text}, {"bob", R"({"type":"ping"})"}});
    CHECK(f.sink.frames.empty());
    CHECK(f.session.statistics().messages == 2);
}

TEST_CASE("kick, server-side unlink, send and broadcast", "[net][session]") {
    Fixture f;
    const auto a = f.linked_user("alice");
    const auto b = f.linked_user("bob");
    f.sink.clear();
    f.session.send("alice", "one");
    f.session.send("nobody", "two");
    f.session.broadcast("three");
    CHECK(f.sink.take(a) == Frames{"one", "three"});
    CHECK(f.sink.take(b) == Frames{"three"});
    CHECK(f.session.statistics().undeliverable == 1);
    // a broadcast is serialised once: every connection holds the same buffer
    f.session.broadcast("four");
    CHECK(f.sink.shared[a].back() == f.sink.shared[b].back());

    CHECK(f.session.unlink("bob"));
    CHECK_FALSE(f.session.unlink("bob"));
    CHECK(f.sink.take(b).back() == unlinked("bob"));
    f.session.send("bob", "five");
    CHECK(f.sink.take(b).empty());

    // kicking an unlinked user: only the linked ones hear it left
    f.sink.clear();
    CHECK(f.session.kick("bob"));
    CHECK(f.sink.take(a) == Frames{left("bob")});
    CHECK(f.sink.take(b).empty());
    CHECK(f.session.kick("alice"));
    CHECK(f.sink.take(a) == Frames{unlinked("alice"), left("alice")});
    CHECK_FALSE(f.session.kick("alice"));
    CHECK(f.session.users().empty());
    CHECK(f.session.open(a));
    CHECK(f.session.open(b));
}

TEST_CASE("close_all: every user leaves with the usual frames, then every connection closes",
          "[net][session]") {
    Fixture f;
    const auto a = f.linked_user("alice");
    const auto b = f.linked_user("bob");
    const auto idle = f.session.connect();
    f.session.receive(b, R"({"type":"krmx/unlink"})");
    f.sink.clear();
    std::vector<std::string> leaves;
    auto sub = f.session.on_leave([&](std::string_view u) { leaves.emplace_back(u); });
    f.session.close_all();
    // in join order: alice is no longer linked when bob leaves, so nobody hears of bob (as in @krmx/server)
    CHECK(f.sink.take(a) == Frames{unlinked("alice"), left("alice")});
    CHECK(f.sink.take(b).empty());
    CHECK(f.sink.take(idle).empty());
    CHECK(leaves == std::vector<std::string>{"alice", "bob"});
    CHECK(f.sink.closed ==
          std::vector<std::pair<ConnectionId, CloseReason>>{{a, CloseReason::server_stopping},
                                                            {b, CloseReason::server_stopping},
                                                            {idle, CloseReason::server_stopping}});
    CHECK(f.session.connection_count() == 0);
    f.session.receive(a, link_frame("alice"));  // a late frame on a closed connection: ignored
    CHECK(f.sink.frames[a].empty());
}

TEST_CASE("authentication may answer later, times out, and reserves the name meanwhile", "[net][session]") {
    krmx::net::SessionOptions options;
    options.authentication_timeout = 2s;
    std::vector<krmx::net::LinkDecision> waiting;
    std::vector<krmx::net::LinkRequest> requests;
    options.authenticate = [&](const krmx::net::LinkRequest& r, krmx::net::LinkDecision d) {
        requests.push_back(r);
        waiting.push_back(d);
    };
    Fixture f{options};
    const auto a = f.session.connect();
    f.session.receive(a, link_auth("alice", "t1"));
    CHECK(f.sink.take(a).empty());
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].is_new_user);
    CHECK(requests[0].auth == "t1");
    CHECK(requests[0].version == "0.5.4");
    CHECK(f.session.next_deadline() == f.clock.now() + 2s);

    // the name is reserved while the answer is outstanding
    const auto other = f.session.connect();
    f.session.receive(other, link_frame("alice"));
    CHECK(f.sink.take(other) == Frames{rejected("user alice is already linked to a connection")});
    // frames on the waiting connection are ignored and counted
    f.session.receive(a, R"({"type":"krmx/leave"})");
    CHECK(f.session.statistics().ignored_while_authenticating == 1);

    f.clock.advance(1s);
    f.session.tick();
    waiting[0].accept();
    CHECK(f.sink.take(a) == Frames{accepted, joined("alice"), linked("alice")});
    waiting[0].reject("too late");  // only the first answer counts
    CHECK(f.sink.take(a).empty());

    // bob never hears back: authentication timeout, and a late answer is ignored
    const auto b = f.session.connect();
    f.session.receive(b, link_frame("bob"));
    f.clock.advance(1999ms);
    f.session.tick();
    CHECK(f.sink.take(b).empty());
    f.clock.advance(1ms);
    f.session.tick();
    CHECK(f.sink.take(b) == Frames{rejected("authentication timeout")});
    waiting[1].accept();
    CHECK(f.sink.take(b).empty());
    CHECK_FALSE(f.session.known("bob"));
    CHECK(f.session.statistics().authentication_timeouts == 1);

    // the connection closes while waiting: the answer finds nobody, the name is free again
    f.session.receive(b, link_frame("bob"));
    f.session.disconnect(b);
    waiting[2].accept();
    CHECK_FALSE(f.session.known("bob"));
    const auto b2 = f.session.connect();
    f.session.receive(b2, link_frame("bob"));
    waiting[3].reject("nope");
    CHECK(f.sink.take(b2) == Frames{rejected("nope")});
}

TEST_CASE("an authentication hook that throws rejects; decisions outliving the session are harmless",
          "[net][session]") {
    std::optional<krmx::net::LinkDecision> kept;
    {
        krmx::net::SessionOptions options;
        options.authenticate = [&](const krmx::net::LinkRequest& r, krmx::net::LinkDecision d) {
            if (r.username == "thrower") throw std::runtime_error("hook bug");
            kept = d;
        };
        Fixture f{options};
        const auto c = f.session.connect();
        f.session.receive(c, link_frame("thrower"));
        CHECK(f.sink.take(c) == Frames{rejected("authentication failed")});
        CHECK(f.session.statistics().hook_errors == 1);
        f.session.receive(c, link_frame("keeper"));
    }
    REQUIRE(kept);
    kept->accept();  // the session is gone: nothing happens
}

TEST_CASE("a connection that does not link in time is closed", "[net][session]") {
    krmx::net::SessionOptions options;
    options.link_deadline = 5s;
    Fixture f{options};
    const auto idle = f.session.connect();
    const auto a = f.linked_user("alice");
    f.clock.advance(3s);
    const auto late = f.session.connect();
    f.session.receive(late, "garbage");  // rejected frames do not extend the deadline
    CHECK(f.session.next_deadline() == f.clock.now() + 2s);
    f.clock.advance(2s);
    f.session.tick();
    CHECK(f.sink.closed ==
          std::vector<std::pair<ConnectionId, CloseReason>>{{idle, CloseReason::link_deadline}});
    CHECK_FALSE(f.session.open(idle));
    CHECK(f.session.open(a));
    // after an unlink the clock starts again
    f.session.receive(a, R"({"type":"krmx/unlink"})");
    f.clock.advance(3s);
    f.session.tick();
    CHECK(f.sink.closed.size() == 2);
    CHECK(f.sink.closed[1].first == late);
    f.clock.advance(2s);
    f.session.tick();
    CHECK(f.sink.closed.size() == 3);
    CHECK(f.sink.closed[2].first == a);
    CHECK(f.session.statistics().link_deadline_closes == 3);
    CHECK(f.session.known("alice"));
    f.session.disconnect(a);  // the I/O layer's report after the close: a no-op
    CHECK(f.session.statistics().connections_closed == 3);
}

TEST_CASE("hooks that kick or unlink from inside callbacks", "[net][session]") {
    Fixture f;
    auto kick_on_link = f.session.on_link([&](std::string_view u) {
        if (u == "mallory") (void)f.session.kick(u);
    });
    auto leave_on_unlink = f.session.on_unlink([&](std::string_view u) {
        if (u == "bob") (void)f.session.kick(u);
    });
    auto kick_on_message =
        f.session.on_message([&](std::string_view u, const krmx::Message&) { (void)f.session.kick(u); });
    const auto a = f.linked_user("alice");
    const auto m = f.session.connect();
    f.session.receive(m, link_frame("mallory"));
    CHECK(f.sink.take(m) == Frames{accepted, joined("alice"), linked("alice"), joined("mallory"),
                                   linked("mallory"), unlinked("mallory"), left("mallory")});
    CHECK_FALSE(f.session.known("mallory"));
    const auto b = f.session.connect();
    f.session.receive(b, link_frame("bob"));
    f.session.receive(b,
                      R"({"type":"krmx/leave"})");  // unlink -> hook kicks -> the outer leave finds bob gone
    CHECK_FALSE(f.session.known("bob"));
    CHECK(f.session.statistics().leaves == 2);
    f.session.receive(a, R"({"type":"anything"})");
    CHECK_FALSE(f.session.known("alice"));
}

TEST_CASE("names that need JSON escapes are escaped in frames", "[net][session]") {
    krmx::net::SessionOptions options;
    options.is_valid_username = [](std::string_view) {
        return true;
    };
    Fixture f{options};
    const auto c = f.session.connect();
    f.session.receive(c, R"({"type":"krmx/link","payload":{"username":"a\"b\\c\u0001","version":"0.5.4"}})");
    const auto frames = f.sink.take(c);
    REQUIRE(frames.size() == 3);
    CHECK(frames[1] == R"({"type":"krmx/joined","payload":{"username":"a\"b\\c\u0001"}})");
    CHECK(f.session.linked("a\"b\\c\x01"));
}

TEST_CASE("a StreamDomain runs on the session unchanged", "[net][session][stream]") {
    Fixture f;
    krmx::DomainHost host{f.session};
    krmx::StreamDomain server{host, "counter", counter::model()};
    (void)server.dispatch("<server>", counter::increment(5));
    const auto a = f.session.connect();
    f.session.receive(a, link_frame("alice"));
    // the history follows the link frames (the link hook is where it is sent), as one append per event: this
    // client did not say it reads history pages (as the JavaScript clients do not)
    CHECK(
        f.sink.take(a) ==
        Frames{
            accepted, joined("alice"), linked("alice"),
            R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"<server>","event":{"type":"increment","payload":5},"position":0}})"});
    const auto b = f.linked_user("bob");
    f.sink.clear();
    f.session.receive(
        a,
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"mallory","event":{"payload":2,"type":"increment"},"id":1}})");
    const std::string confirmed =
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice","event":{"payload":2,"type":"increment"},"position":1,"id":1}})";
    CHECK(f.sink.take(a) == Frames{confirmed});
    CHECK(f.sink.take(b) == Frames{confirmed});
    f.session.receive(
        b, R"({"type":"stream/append","payload":{"domain":"counter","event":{"type":"claim"},"id":4}})");
    f.sink.clear();
    f.session.receive(
        a,
        R"({"type":"stream/append","payload":{"domain":"counter","event":{"type":"increment","payload":1},"id":2}})");
    CHECK(f.sink.take(b).empty());
    const auto refused = f.sink.take(a);
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].find("stream/invalidate") != std::string::npos);
    CHECK(refused[0].find("claimed by someone else") != std::string::npos);
    CHECK(server.state().counter == 7);
    CHECK(server.state().claim == "bob");
    // an unlinked connection cannot append: its frame is a failed link attempt, not an event
    f.session.receive(b, R"({"type":"krmx/unlink"})");
    f.sink.clear();
    f.session.receive(
        b, R"({"type":"stream/append","payload":{"domain":"counter","event":{"type":"release"}}})");
    CHECK(f.sink.take(b) == Frames{rejected("unlinked connection")});
    CHECK(server.size() == 3);
}

// A room's event and a delta that several viewers share are serialised once: every member's frame is the
// same shared text, not a copy each.
TEST_CASE("a room's append and a shared projection delta are one text for every member", "[net][session][stream]") {
    Fixture f;
    krmx::DomainHost host{f.session};
    krmx::StreamDomain room{host, "room", counter::model(), {.audience = krmx::Audience::members}};
    // Everyone sees the same view: the counter's value.
    const auto same_view = krmx::ProjectionModel<Counter, int>{Counter{}, [](const Counter& c, std::string_view) {
                               return c.counter;
                           }}.when(counter::increment, [](Counter& c, std::string_view, int by) { c.counter += by; });
    krmx::ProjectionDomain table{host, "table", same_view};
    std::vector<ConnectionId> members;
    for (const char* user : {"alice", "bob", "carol"}) {
        (void)room.admit(user);
        members.push_back(f.linked_user(user));
    }
    const auto outsider = f.linked_user("dave");
    f.sink.clear();
    f.session.receive(members[0],
                      R"({"type":"stream/append","payload":{"domain":"room","event":{"type":"increment","payload":1}}})");
    REQUIRE(f.sink.shared[members[0]].size() == 1);
    for (const auto c : members) CHECK(f.sink.shared[c] == std::vector{f.sink.shared[members[0]].front()});
    CHECK(f.sink.shared[outsider].empty());
    f.sink.clear();
    // dave acts with an optimisticId: his delta carries it; the three others share one text
    f.session.receive(outsider,
                      R"({"type":"projection/action","payload":{"domain":"table","action":{"type":"increment","payload":2},"optimisticId":"o1"}})");
    REQUIRE(f.sink.shared[outsider].size() == 1);
    CHECK(f.sink.frames[outsider].front().find(R"("optimisticId":"o1")") != std::string::npos);
    const auto shared = f.sink.shared[members[0]].at(0);
    CHECK(shared->find("optimisticId") == std::string::npos);
    for (const auto c : members) CHECK(f.sink.shared[c] == std::vector{shared});
}

// Issue 20, defect 1: the session read messages with the event's depth limit, so an event that the stream
// layer accepts (nested up to json_max_event_depth levels, the event object counting as one) got its
// sender unlinked when it came through the session.
TEST_CASE("an event nested as deep as the stream layer allows passes the session", "[net][session][stream]") {
    Fixture f;
    krmx::DomainHost host{f.session};
    krmx::StreamDomain server{host, "counter", counter::model()};
    const auto a = f.linked_user("alice");
    const auto event = [](int depth) {  // the event object is level 1; `x` holds the rest
        return R"({"type":"increment","payload":1,"x":)" + std::string(static_cast<std::size_t>(depth - 1), '[') +
               std::string(static_cast<std::size_t>(depth - 1), ']') + "}";
    };
    for (const int depth : {krmx::detail::json_max_event_depth - 1, krmx::detail::json_max_event_depth}) {
        INFO(depth);
        f.session.receive(a, R"({"type":"stream/append","payload":{"domain":"counter","event":)" + event(depth) +
                                 R"(,"id":)" + std::to_string(depth) + "}}");
        CHECK(f.session.linked("alice"));
    }
    CHECK(server.size() == 2);
    CHECK(f.session.statistics().unlinked_by_bad_message == 0);
}

TEST_CASE("a link request may name the features its client reads; a malformed list is an invalid request",
          "[net][session]") {
    Fixture f;
    const auto a = f.session.connect();
    f.session.receive(
        a, R"({"type":"krmx/link","payload":{"username":"alice","version":"0.5.4","features":["stream/history","x"]}})");
    REQUIRE(f.session.linked("alice"));
    CHECK(f.session.has_feature("alice", "stream/history"));
    CHECK(f.session.has_feature("alice", "x"));
    CHECK_FALSE(f.session.has_feature("alice", "y"));
    CHECK_FALSE(f.session.has_feature("nobody", "x"));
    f.session.receive(a, R"({"type":"krmx/unlink"})");
    CHECK_FALSE(f.session.has_feature("alice", "stream/history"));  // features belong to a link
    f.sink.clear();
    for (const char* features : {R"("stream/history")", R"([1])", R"({})", R"(["a",null])"}) {
        INFO(features);
        f.session.receive(a, std::string{R"({"type":"krmx/link","payload":{"username":"alice","version":"0.5.4","features":)"} +
                                 features + "}}");
        CHECK(f.sink.take(a) == Frames{rejected("invalid link request")});
    }
    f.session.receive(a, link_frame("alice"));  // no features: a JavaScript client
    CHECK_FALSE(f.session.has_feature("alice", "stream/history"));
}

// Issue 20, defect 5: the session's callbacks are signals that count and skip a callback that throws, but
// the session never showed that count: a failing game hook went unnoticed.
TEST_CASE("callbacks that throw are counted where the application can read them", "[net][session]") {
    Fixture f;
    auto throws_on_link = f.session.on_link([](std::string_view) { throw std::runtime_error("hook"); });
    auto throws_on_message = f.session.on_message([](std::string_view, const krmx::Message&) { throw 42; });
    std::vector<std::string> later;
    auto still_runs = f.session.on_message(
        [&](std::string_view u, const krmx::Message&) { later.emplace_back(u); });
    const auto a = f.linked_user("alice");
    f.session.receive(a, R"({"type":"chat"})");
    CHECK(later == std::vector<std::string>{"alice"});
    CHECK(f.session.statistics().callback_errors == 2);
    CHECK(f.session.linked("alice"));
}

// --- exposed to the internet: forgotten users and per-address limits --------------------------------------

TEST_CASE("by default unlinked users are remembered, as in Krmx", "[net][session][abuse]") {
    Fixture f;
    const auto b = f.linked_user("bob");
    f.session.disconnect(b);
    f.clock.advance(std::chrono::hours{24 * 30});
    f.session.tick();
    CHECK(f.session.known("bob"));
    CHECK(f.session.statistics().forgotten_users == 0);
    CHECK_FALSE(f.session.next_deadline());
}

TEST_CASE("unlinked users are forgotten after a while, with the krmx/left broadcast", "[net][session][abuse]") {
    krmx::net::SessionOptions options;
    options.forget_unlinked_after = 60s;
    options.link_deadline = krmx::Duration::zero();
    Fixture f{options};
    std::vector<std::string> left_hooks;
    auto s = f.session.on_leave([&](std::string_view u) { left_hooks.emplace_back(u); });
    const auto a = f.linked_user("alice");
    const auto b = f.linked_user("bob");
    const auto c = f.linked_user("carol");
    f.session.disconnect(b);
    f.clock.advance(10s);
    f.session.receive(c, R"({"type":"krmx/unlink"})");  // an unlink on an open socket counts too
    f.sink.clear();
    CHECK(f.session.next_deadline() == f.clock.now() + 50s);

    f.clock.advance(49s);
    f.session.tick();
    CHECK(f.session.known("bob"));
    f.clock.advance(1s);
    f.session.tick();
    CHECK_FALSE(f.session.known("bob"));
    CHECK(f.sink.take(a) == Frames{left("bob")});
    CHECK(f.sink.take(c).empty());  // carol's socket is open but not linked: unlinked sockets hear nothing
    CHECK(left_hooks == std::vector<std::string>{"bob"});
    CHECK(f.session.statistics().forgotten_users == 1);
    CHECK(f.session.statistics().leaves == 1);

    // carol relinks before her time is up: her clock stops, and starts again at her next unlink
    f.clock.advance(5s);
    f.session.receive(c, link_frame("carol"));
    REQUIRE(f.session.linked("carol"));
    f.clock.advance(30s);
    f.session.tick();
    CHECK(f.session.known("carol"));
    f.session.disconnect(c);
    f.clock.advance(59s);
    f.session.tick();
    CHECK(f.session.known("carol"));
    f.clock.advance(1s);
    f.session.tick();
    CHECK_FALSE(f.session.known("carol"));

    // a later joiner sees only who is still there
    f.sink.clear();
    const auto d = f.session.connect();
    f.session.receive(d, link_frame("dave"));
    CHECK(f.sink.take(d) == Frames{accepted, joined("alice"), linked("alice"), joined("dave"), linked("dave")});
    CHECK(f.session.statistics().forgotten_users == 2);
}

TEST_CASE("beyond max_unlinked_users the user unlinked longest ago is forgotten at once", "[net][session][abuse]") {
    krmx::net::SessionOptions options;
    options.max_unlinked_users = 2;
    Fixture f{options};
    const auto a = f.linked_user("alice");
    const auto u1 = f.linked_user("u1");
    const auto u2 = f.linked_user("u2");
    const auto u3 = f.linked_user("u3");
    f.session.disconnect(u1);
    f.session.disconnect(u2);
    f.sink.clear();
    CHECK(f.session.known("u1"));
    f.session.disconnect(u3);  // three unlinked: u1 goes, without waiting for a tick
    CHECK_FALSE(f.session.known("u1"));
    CHECK(f.session.known("u2"));
    CHECK(f.session.known("u3"));
    CHECK(f.sink.take(a) == Frames{unlinked("u3"), left("u1")});

    // a relinked user no longer counts as unlinked
    const auto again = f.session.connect();
    f.session.receive(again, link_frame("u2"));
    REQUIRE(f.session.linked("u2"));
    const auto u4 = f.linked_user("u4");
    f.session.receive(u4, R"({"type":"krmx/unlink"})");
    CHECK(f.session.known("u3"));
    CHECK(f.session.known("u4"));
    CHECK(f.session.statistics().forgotten_users == 1);

    // a spray of throw-away names leaves the table, and a joiner's roster, bounded
    for (int i = 0; i < 10'000; ++i) {
        const auto c = f.session.connect();
        f.session.receive(c, link_frame("spray" + std::to_string(i)));
        f.session.disconnect(c);
    }
    CHECK(f.session.users().size() == 2 + 2);  // alice, u2 linked; the two unlinked last
    CHECK(f.session.known("spray9999"));
    CHECK(f.session.statistics().forgotten_users == 1 + 10'000);
    f.sink.clear();
    const auto joiner = f.session.connect();
    f.session.receive(joiner, link_frame("zoe"));
    CHECK(f.sink.take(joiner).size() == 1 + 2 * 2 + 2 + 2);  // accepted, alice and u2 (joined, linked),
                                                            // two sprayed (joined), zoe (joined, linked)
}

TEST_CASE("link attempts are limited per address per second", "[net][session][abuse]") {
    krmx::net::SessionOptions options;
    options.link_attempts_per_address_per_second = 3;
    Fixture f{options};
    const auto c = f.session.connect("10.0.0.1");
    const auto churn = [&] {
        f.session.receive(c, link_frame("alice"));
        const bool ok = f.session.linked("alice");
        if (ok) f.session.receive(c, R"({"type":"krmx/unlink"})");
        return ok;
    };
    CHECK(churn());
    CHECK(churn());
    CHECK(churn());
    f.sink.clear();
    CHECK_FALSE(churn());
    CHECK(f.sink.take(c) == Frames{rejected("too many link attempts")});
    CHECK(f.session.statistics().rejected_link_rate == 1);
    // a new connection from the same address shares the budget; another address, or none, has its own
    const auto same = f.session.connect("10.0.0.1");
    f.session.receive(same, link_frame("bob"));
    CHECK_FALSE(f.session.linked("bob"));
    const auto other = f.session.connect("10.0.0.2");
    f.session.receive(other, link_frame("bob"));
    CHECK(f.session.linked("bob"));
    const auto local = f.session.connect();
    for (int i = 0; i < 10; ++i) {
        f.session.receive(local, link_frame("carol"));
        REQUIRE(f.session.linked("carol"));
        f.session.receive(local, R"({"type":"krmx/unlink"})");
    }
    // the budget refills at the rate: one attempt per third of a second
    f.clock.advance(340ms);
    CHECK(churn());
    CHECK_FALSE(churn());
    CHECK(f.session.statistics().rejected_link_rate == 3);
    CHECK(f.session.statistics().rejected() == 3);
    // frames that are no link request do not count as attempts
    f.clock.advance(1s);
    f.session.receive(c, "garbage");
    f.session.receive(c, R"({"type":"custom"})");
    CHECK(churn());
}

TEST_CASE("new usernames are limited per address per minute; known users relink", "[net][session][abuse]") {
    krmx::net::SessionOptions options;
    options.new_users_per_address_per_minute = 2;
    Fixture f{options};
    const auto throwaway = [&](std::string_view address, const std::string& name) {
        const auto c = f.session.connect(address);
        f.session.receive(c, link_frame(name));
        const bool ok = f.session.linked(name);
        auto frames = f.sink.take(c);
        f.session.disconnect(c);
        return ok ? Frames{} : frames;
    };
    CHECK(throwaway("a", "u1").empty());
    CHECK(throwaway("a", "u2").empty());
    CHECK(throwaway("a", "u3") == Frames{rejected("too many new users")});
    CHECK(f.session.statistics().rejected_new_user_rate == 1);
    CHECK(throwaway("a", "u1").empty());  // known: a relink, not a new user
    CHECK(throwaway("b", "u3").empty());
    // a refused link (a bad version, a taken name) does not spend the budget
    const auto c = f.session.connect("b");
    f.session.receive(c, link_frame("u4", "0.4.0"));
    CHECK_FALSE(f.session.known("u4"));
    CHECK(throwaway("b", "u5").empty());
    CHECK(throwaway("b", "u6") == Frames{rejected("too many new users")});
    // half a minute gives one back
    f.clock.advance(30s);
    CHECK(throwaway("a", "u7").empty());
    CHECK(throwaway("a", "u8") == Frames{rejected("too many new users")});
    CHECK(f.session.statistics().rejected_new_user_rate == 3);
}

TEST_CASE("the per-address table forgets addresses that are gone and idle", "[net][session][abuse]") {
    krmx::net::SessionOptions options;
    options.link_attempts_per_address_per_second = 5;
    options.new_users_per_address_per_minute = 5;
    options.max_unlinked_users = 10;
    options.link_deadline = krmx::Duration::zero();  // the kept connection stays open
    Fixture f{options};
    for (int i = 0; i < 1000; ++i) {
        const auto c = f.session.connect("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
        f.session.receive(c, link_frame("spray" + std::to_string(i)));
        f.session.disconnect(c);
    }
    CHECK(f.session.tracked_addresses() == 1000);  // their budgets are not full again yet
    const auto kept = f.session.connect("192.168.1.1");
    f.clock.advance(61s);
    f.session.tick();
    CHECK(f.session.tracked_addresses() == 1);  // the open connection's address stays
    f.session.disconnect(kept);
    CHECK(f.session.tracked_addresses() == 0);
}

TEST_CASE("refused links, kicks and authentication hooks that throw are logged, once each", "[net][session][log]") {
    std::vector<std::string> events;
    std::vector<std::string> reasons;
    krmx::net::SessionOptions options;
    options.log = krmx::Logger{[&](const krmx::LogRecord& record) {
        events.emplace_back(record.event);
        for (const auto& field : record.fields) {
            if (field.key == "reason") reasons.push_back(field.value);
        }
    }};
    options.authenticate = [](const krmx::net::LinkRequest& request, krmx::net::LinkDecision decision) {
        if (request.username == "mallory") throw std::runtime_error{"hook bug"};
        decision.accept();
    };
    Fixture f{options};
    const auto c = f.session.connect("203.0.113.9");
    f.session.receive(c, link_frame("alice", "0.4.0"));
    f.session.receive(c, link_frame("mallory"));
    REQUIRE(events == std::vector<std::string>{"link.refused", "authentication.hook_failed", "link.refused"});
    CHECK(reasons == std::vector<std::string>{"krmx server version mismatch (server=0.5.*,client=0.4.0)", "authentication failed"});
    events.clear();
    (void)f.linked_user("bob");
    CHECK(events.empty());  // a link that works is no notable event
    CHECK(f.session.kick("bob"));
    CHECK(events == std::vector<std::string>{"user.kicked"});
}
