// Bad input from the network: refused cleanly, counted, never a crash, never a change of state.
#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "sync_support.hpp"

using nlohmann::json;

namespace {

// A table with some state, a bystander client, and a raw connection for the attacker.
struct Attack {
    Attack() {
        (void)t.server.dispatch("alice", counter::increment(3));
        t.join("bob");
        t.hub.run_until_idle();
        t.hub.client("bob").clear_received();
    }
    // Sends `text` from mallory (linking mallory again first if an earlier frame got it unlinked) and
    // returns what mallory got back.
    std::vector<json> send(const std::string& text) {
        if (!mallory.linked()) {
            mallory.link();
            t.hub.run_until_idle();
        }
        mallory.clear_received();
        mallory.send(text);
        t.hub.run_until_idle();
        return parsed(mallory);
    }
    // Frames outside the grammar never reach the host: the session reads every frame once and unlinks
    // whoever sends one that is no message (Krmx's rule for unparsable frames).
    [[nodiscard]] std::uint64_t unlinked_by_bad_message() const {
        return t.hub.server().statistics().unlinked_by_bad_message;
    }
    void unchanged() {
        CHECK(t.server.state() == Counter{3, std::nullopt});
        CHECK(t.server.size() == 1);
        CHECK(t["bob"].state() == t.server.state());
        CHECK(t.hub.client("bob").received().empty());  // bystanders hear nothing
    }
    Table t;
    krmx::testing::ClientEndpoint& mallory = t.raw("mallory");
};

std::string append(const std::string& payload_members) {
    return R"({"type":"stream/append","payload":{)" + payload_members + "}}";
}

}  // namespace

TEST_CASE("text that is not JSON, or not a message, unlinks its sender and is counted") {
    Attack a;
    for (const std::string& text : std::vector<std::string>{
             "", "{", "not json", R"({"type":"stream/append")", "[1,2]", "\"text\"", "42", R"({"type":5})",
             R"({"payload":{}})", "{\"type\":\"stream/append\"}\x01", "{\"type\":\"stream/\xff\"}"}) {
        CHECK(a.send(text).empty());
    }
    CHECK(a.unlinked_by_bad_message() == 11);
    CHECK(a.t.host.statistics().messages == 0);
    a.unchanged();
}

TEST_CASE("deeply nested JSON is refused without exhausting the stack") {
    Attack a;
    const std::string deep = append(R"("domain":"counter","id":1,"event":{"type":"increment","payload":)" +
                                    std::string(100000, '[') + std::string(100000, ']') + "}");
    CHECK(a.send(deep).empty());
    CHECK(a.unlinked_by_bad_message() == 1);
    a.unchanged();
}

TEST_CASE("a message longer than the size limit is dropped unread") {
    krmx::testing::Hub hub{{.host = {.max_message_bytes = 2048}}};
    auto& host = hub.host();
    krmx::StreamDomain server{host, "counter", counter::model(), {.max_event_bytes = 512}};
    auto& mallory = hub.connect("mallory");
    mallory.link();
    hub.run_until_idle();
    mallory.clear_received();
    mallory.send(append(R"("domain":"counter","id":1,"event":{"type":"increment","payload":1},"pad":")" +
                        std::string(2100, 'x') + "\""));
    mallory.send(append(R"("domain":"counter","id":2,"event":{"type":"claim"})"));
    hub.run_until_idle();
    CHECK(host.statistics().oversized == 1);
    CHECK(server.state() == Counter{0, "mallory"});
    CHECK(mallory.received().size() == 1);
}

TEST_CASE("other protocols' messages are left alone") {
    Attack a;
    CHECK(a.send(R"({"type":"chat","payload":"hi"})").empty());
    CHECK(a.t.host.statistics().other_protocol == 1);
    a.unchanged();
}

TEST_CASE("a stream message with a broken envelope is dropped and counted") {
    Attack a;
    for (const std::string& text :
         std::vector<std::string>{R"({"type":"stream/append"})", R"({"type":"stream/append","payload":[]})",
                                  R"({"type":"stream/append","payload":"counter"})",
                                  R"({"type":"stream/history","payload":{"domain":"counter","events":[]}})",
                                  R"({"type":"stream/invalidate","payload":{"domain":"counter","id":1}})",
                                  append(R"("id":1,"event":{"type":"claim"})"),
                                  append(R"("domain":7,"id":1,"event":{"type":"claim"})"),
                                  append(R"("domain":null,"id":1,"event":{"type":"claim"})")}) {
        CHECK(a.send(text).empty());
    }
    CHECK(a.t.host.statistics().malformed == 8);
    a.unchanged();
}

TEST_CASE("an event for a domain the server does not have is invalidated when it names an id") {
    Attack a;
    const auto answer = a.send(append(R"("domain":"chess","id":4,"event":{"type":"move"})"));
    REQUIRE(answer.size() == 1);
    CHECK(answer[0] == json::parse(R"({"type":"stream/invalidate","payload":{"domain":"chess","id":4,)"
                                   R"("event":{"type":"move"},"reason":"unknown domain \"chess\""}})"));
    CHECK(a.send(append(R"("domain":"chess","event":{"type":"move"})")).empty());
    CHECK(a.t.host.statistics().unknown_domain == 2);
    CHECK(a.t.host.statistics().invalidates_sent == 1);
    a.unchanged();
}

TEST_CASE("an id that is not an unsigned integer cannot be answered: the append is dropped") {
    Attack a;
    for (const std::string& id :
         std::vector<std::string>{R"("1")", "-1", "1.5", "1e2", "null", "18446744073709551616", "{}"}) {
        CHECK(a.send(append(R"("domain":"counter","id":)" + id + R"(,"event":{"type":"claim"})")).empty());
    }
    CHECK(a.t.server.statistics().malformed == 6);
    CHECK(a.t.server.statistics().dropped == 6);
    CHECK(a.unlinked_by_bad_message() == 1);  // 2^64 is no integer every reader holds exactly
    a.unchanged();
}

TEST_CASE("an append without an event, or with something else than an event, is invalidated") {
    Attack a;
    auto answer = a.send(append(R"("domain":"counter","id":1)"));
    REQUIRE(answer.size() == 1);
    CHECK(answer[0]["type"] == "stream/invalidate");
    CHECK(answer[0]["payload"]["id"] == 1);
    CHECK(answer[0]["payload"]["reason"] == "stream/append without an event");
    CHECK_FALSE(answer[0]["payload"].contains("event"));

    for (const std::string& event :
         std::vector<std::string>{"7", "[]", R"("claim")", "{}", R"({"type":3})", "null"}) {
        answer = a.send(append(R"("domain":"counter","id":2,"event":)" + event));
        REQUIRE(answer.size() == 1);
        CHECK(answer[0]["payload"]["event"] == json::parse(event));
        CHECK_FALSE(answer[0]["payload"]["reason"].get<std::string>().empty());
    }
    CHECK(a.t.server.statistics().malformed == 7);
    CHECK(a.t.server.statistics().invalidates_sent == 7);
    a.unchanged();
}

TEST_CASE("unknown event types and payloads of the wrong type are invalidated with a readable reason") {
    Attack a;
    auto answer = a.send(append(R"("domain":"counter","id":1,"event":{"type":"decrement","payload":1})"));
    CHECK(answer.at(0)["payload"]["reason"] == "unknown event type 'decrement'");
    answer = a.send(append(R"("domain":"counter","id":2,"event":{"type":"increment","payload":"ten"})"));
    CHECK(answer.at(0)["payload"]["reason"] == "payload: expected number, got string");
    answer = a.send(append(R"("domain":"counter","id":3,"event":{"type":"increment","payload":[1]})"));
    CHECK(answer.at(0)["type"] == "stream/invalidate");
    answer = a.send(append(R"("domain":"counter","id":4,"event":{"type":"claim","payload":{}})"));
    CHECK(answer.at(0)["payload"]["reason"] == "event type 'claim' takes no payload, got object");
    CHECK(a.t.server.statistics().unknown_type == 1);
    CHECK(a.t.server.statistics().invalid_payload == 3);
    CHECK(a.t.server.statistics().refused() == 4);
    a.unchanged();
}

TEST_CASE("a refused append without an id is still answered with the event, for clients that match on text") {
    Attack a;
    const auto answer = a.send(append(R"("domain":"counter","event":{"type":"release"})"));
    REQUIRE(answer.size() == 1);
    CHECK(answer[0] == json::parse(R"({"type":"stream/invalidate","payload":{"domain":"counter",)"
                                   R"("event":{"type":"release"},"reason":"claimed by someone else"}})"));
    a.unchanged();
}

TEST_CASE("a message from a connection that is not linked never reaches the stream") {
    Table t;
    auto& ghost = t.hub.connect("ghost");
    ghost.send(append(R"("domain":"counter","event":{"type":"claim"})"));  // dropped by the connection
    t.hub.run_until_idle();
    CHECK(t.server.size() == 0);
    CHECK(t.hub.statistics().undeliverable == 1);
    CHECK(t.host.statistics().messages == 0);
}

TEST_CASE("a client ignores unusable messages from its server and keeps its state") {
    krmx::testing::Hub hub;
    auto& connection = hub.connect("alice");
    krmx::StreamClient client{connection, "counter", counter::model()};
    client.linked("alice");  // driven by hand: no server here
    client.receive(R"({"type":"stream/history","payload":{"domain":"counter","position":0,)"
                   R"("events":[{"dispatcher":"bob","event":{"type":"increment","payload":2}}]}})");
    REQUIRE(client.state().counter == 2);
    for (
        const std::string& text : std::vector<std::string>{
            "", "nonsense", "[]", R"({"type":"stream/append"})", R"({"type":"stream/append","payload":{}})",
            R"({"type":"stream/append","payload":{"domain":"counter"}})",
            R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"bob","event":{"type":"claim"}}})",
            R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"bob","event":{"type":"claim"},"position":-1}})",
            R"({"type":"stream/history","payload":{"domain":"counter","position":0,"events":{}}})",
            R"({"type":"stream/invalidate","payload":{"domain":"counter","id":"x"}})",
            R"({"type":"stream/unknown","payload":{"domain":"counter"}})", std::string(100000, '[')}) {
        client.receive(text);
    }
    CHECK(client.statistics().ignored == 12);
    CHECK(client.synced());
    // A repeated position says the client no longer follows the stream: it starts over and asks again.
    connection.clear_received();
    client.receive(
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"bob","event":{"type":"claim"},"position":0}})");
    CHECK(client.statistics().duplicates == 1);
    CHECK(client.sync_status() == krmx::SyncStatus::resyncing);
    CHECK(client.state() == Counter{});
    // While it waits, later positions are skipped, not applied.
    client.receive(
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"bob","event":{"type":"claim"},"position":5}})");
    CHECK(client.statistics().out_of_order == 1);
    // Other domains' messages are not this client's business.
    client.receive(
        R"({"type":"stream/append","payload":{"domain":"chess","dispatcher":"bob","event":{"type":"claim"},"position":0}})");
    CHECK(client.state() == Counter{});
}
