// StreamClient and `stream/snapshot`: a client that joins or resyncs far behind is sent the state at a
// position p (in parts) and the history from p. Driven by hand-made server messages on a fake transport,
// so that every case the server could send (or botch) is here, independent of the server's code.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/subscription.hpp>
#include <krmx/net/client_session.hpp>
#include <krmx/stream/optimistic_stream.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_messages.hpp>
#include <krmx/testing/hub.hpp>

#include "catch.hpp"

// A namespace of its own: unity builds put this file in one translation unit with other tests.
namespace snapshot_client_tests {

using nlohmann::json;

namespace {

// A state with strings, so that a text split into parts can cut through UTF-8 sequences.
struct Board {
    int total = 0;
    std::vector<std::string> words;
    friend bool operator==(const Board&, const Board&) = default;
};

void to_json(json& j, const Board& b) { j = {{"total", b.total}, {"words", b.words}}; }
void from_json(const json& j, Board& b) {
    if (j.contains("boom")) throw 42;  // a from_json that throws something that is no std::exception
    j.at("total").get_to(b.total);     // throws nlohmann's type_error on a total that is no number
    j.at("words").get_to(b.words);
}

constexpr krmx::EventType<int> add{"add"};
constexpr krmx::EventType<std::string> word{"word"};
constexpr krmx::EventType<int> need{"need"};  // refused unless total >= the payload
constexpr krmx::EventType<> bad{"bad"};       // writes, then refuses: the confirmed state must be rolled back

krmx::StreamModel<Board> board_model(std::optional<std::uint32_t> revision) {
    auto m = krmx::StreamModel<Board>{}
                 .when(add, [](Board& s, std::string_view, int n) { s.total += n; })
                 .when(word, [](Board& s, std::string_view, const std::string& w) { s.words.push_back(w); })
                 .when(
                     need, [](const Board& s, std::string_view, int k) { return s.total >= k; },
                     [](Board&, std::string_view, int) {})
                 .when(bad, [](Board& s, std::string_view) {
                     s.total = -1000;
                     throw krmx::Rejected("bad");
                 });
    if (revision) m.snapshots(*revision);
    return m;
}

constexpr const char* domain = "board";

// A client transport that records what the client sends; the test plays the server.
struct Wire {
    krmx::Subscription on_link(krmx::UserCallback f) { return link_.connect(std::move(f)); }
    krmx::Subscription on_unlink(krmx::NoticeCallback f) { return unlink_.connect(std::move(f)); }
    krmx::Subscription on_message(krmx::MessageCallback f) { return message_.connect(std::move(f)); }
    void send(std::string text) { sent.push_back(json::parse(text)); }

    std::vector<json> sent;
    krmx::detail::Signal<std::string_view> link_;
    krmx::detail::Signal<> unlink_;
    krmx::detail::Signal<std::string_view> message_;
};

json resync(std::size_t position, bool no_snapshot = false) {
    return json::parse(krmx::detail::resync_message(domain, position, no_snapshot));
}

// The snapshot of `state`'s JSON text `text` as the server sends it.
std::vector<std::string> snapshot(std::size_t position, std::uint32_t revision, std::string_view text,
                                  std::size_t max_bytes = std::size_t{1} << 20) {
    std::vector<std::string> out;
    krmx::detail::snapshot_parts(domain, position, revision, text, max_bytes,
                                 [&](std::string part) { out.push_back(std::move(part)); });
    return out;
}
std::vector<std::string> snapshot(std::size_t position, std::uint32_t revision, const Board& state,
                                  std::size_t max_bytes = std::size_t{1} << 20) {
    return snapshot(position, revision, json(state).dump(), max_bytes);
}

// A history page from `position`: events as (dispatcher, event).
std::string history(std::size_t position, const std::vector<std::pair<std::string, json>>& events, bool more = false) {
    json page = {{"type", "stream/history"}, {"payload", {{"domain", domain}, {"position", position}}}};
    page["payload"]["events"] = json::array();
    for (const auto& [dispatcher, event] : events) page["payload"]["events"].push_back({{"dispatcher", dispatcher}, {"event", event}});
    if (more) page["payload"]["more"] = true;
    return page.dump();
}

std::string append(std::size_t position, const std::string& dispatcher, const json& event,
                   std::optional<std::uint64_t> id = std::nullopt) {
    json message = {{"type", "stream/append"},
                    {"payload", {{"domain", domain}, {"dispatcher", dispatcher}, {"event", event}, {"position", position}}}};
    if (id) message["payload"]["id"] = *id;
    return message.dump();
}

template <class P>
json event(const krmx::TypedEvent<P>& e) {
    return e.to_json();
}

void receive_all(krmx::StreamClient<Board>& client, const std::vector<std::string>& messages) {
    for (const auto& m : messages) client.receive(m);
}

const Board far_state{100, {"déjà", "vu"}};

}  // namespace

TEST_CASE("a snapshot in one part, then the history from its position: the client is synced", "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1)};
    client.linked("alice");
    const auto parts = snapshot(40, 1, far_state);
    REQUIRE(parts.size() == 1);
    client.receive(parts[0]);
    CHECK(client.statistics().snapshots == 1);
    CHECK(client.confirmed_size() == 40);
    CHECK(client.confirmed_state() == far_state);
    CHECK(client.state() == far_state);
    CHECK(client.sync_status() == krmx::SyncStatus::syncing);  // until the history from 40 arrived

    // The history starts AT the snapshot's position: there is no overlap event to check.
    client.receive(history(40, {{"bob", event(add(5))}, {"carol", event(word("ça"))}}));
    CHECK(client.sync_status() == krmx::SyncStatus::synced);
    CHECK(client.confirmed_size() == 42);
    CHECK(client.state() == Board{105, {"déjà", "vu", "ça"}});
    CHECK(client.statistics().events == 2);
    CHECK(client.stream().confirmed_log().base() == 40);

    client.receive(append(42, "bob", event(add(1))));
    CHECK(client.confirmed_size() == 43);
    CHECK(client.state().total == 106);
    CHECK(wire.sent.empty());  // no resync: nothing was missing
    CHECK(client.statistics().resyncs == 0);
    CHECK(client.statistics().snapshots_refused == 0);
    CHECK(client.statistics().ignored == 0);
}

TEST_CASE("a snapshot in many parts, cut through UTF-8 sequences, is joined before it is read", "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(3)};
    client.linked("alice");
    Board state{7, {}};
    for (int i = 0; i < 40; ++i) state.words.push_back("日本語 ü 🎲 é" + std::to_string(i));
    const auto parts = snapshot(1000, 3, state, 200);
    REQUIRE(parts.size() > 5);
    // Slices end anywhere between UTF-8 sequences (inside strings, next to multi-byte ones): no part is
    // JSON on its own, and the client must join the bytes as they were before it reads them.
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        client.receive(parts[i]);
        CHECK(client.confirmed_size() == 0);  // nothing before the last part
    }
    client.receive(parts.back());
    CHECK(client.statistics().snapshots == 1);
    CHECK(client.statistics().snapshots_broken == 0);
    CHECK(client.confirmed_size() == 1000);
    CHECK(client.confirmed_state() == state);
    client.receive(history(1000, {}));
    CHECK(client.synced());
    CHECK(client.confirmed_state() == state);
    CHECK(wire.sent.empty());
}

TEST_CASE("a snapshot of another revision, or for a model without snapshots, is refused: the events are asked for",
          "[stream_client_snapshot]") {
    const bool without_snapshots = GENERATE(false, true);
    INFO((without_snapshots ? "a model without snapshots" : "a model of revision 2"));
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(without_snapshots ? std::nullopt : std::optional<std::uint32_t>{2})};
    std::vector<std::string> reasons;
    auto sub = client.on_sync([&](krmx::SyncStatus, std::string_view reason) { reasons.emplace_back(reason); });
    client.linked("alice");
    receive_all(client, snapshot(40, 1, far_state));
    CHECK(client.statistics().snapshots_refused == 1);
    CHECK(client.statistics().snapshots == 0);
    REQUIRE(wire.sent.size() == 1);
    CHECK(wire.sent[0] == resync(0, true));
    CHECK(wire.sent[0]["payload"]["snapshot"] == false);
    CHECK(client.sync_status() == krmx::SyncStatus::resyncing);
    CHECK(reasons.back().find("snapshot at 40") != std::string::npos);
    CHECK(client.confirmed_size() == 0);
    CHECK(client.state() == Board{});

    // The history that followed the refused snapshot is dropped, without another resync...
    client.receive(history(40, {{"bob", event(add(1))}}, true));
    client.receive(history(41, {{"bob", event(add(1))}}));
    CHECK(client.confirmed_size() == 0);
    CHECK(wire.sent.size() == 1);
    // ...and the answer to the resync, the events from 0, makes the client whole.
    client.receive(history(0, {{"bob", event(add(3))}, {"carol", event(word("ü"))}}));
    CHECK(client.synced());
    CHECK(client.state() == Board{3, {"ü"}});
    CHECK(client.statistics().events == 2);

    // Later resyncs ask for events at once: a snapshot from this server is of no use to this client.
    client.receive(append(9, "bob", event(add(1))));
    REQUIRE(wire.sent.size() == 2);
    CHECK(wire.sent[1] == resync(2, true));
}

TEST_CASE("a snapshot text that does not parse, or whose from_json throws, is refused without harm", "[stream_client_snapshot]") {
    const std::string text = GENERATE(std::string{R"({"total":)"}, std::string{R"({"total":"many","words":[]})"},
                                      std::string{R"({"boom":true})"}, std::string{"\"just a string\""});
    INFO(text);
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1)};
    client.linked("alice");
    client.receive(history(0, {{"bob", event(add(2))}}));
    REQUIRE(client.synced());
    CHECK_NOTHROW(receive_all(client, snapshot(30, 1, text, 100)));
    CHECK(client.statistics().snapshots_refused == 1);
    REQUIRE(wire.sent.size() == 1);
    CHECK(wire.sent[0] == resync(1, true));  // from where it stands: what it holds is as good as before
    CHECK(client.confirmed_size() == 1);
    CHECK(client.state() == Board{2, {}});
    client.receive(history(30, {}));  // the snapshot's history: dropped
    client.receive(history(0, {{"bob", event(add(2))}, {"bob", event(add(4))}}));
    CHECK(client.synced());
    CHECK(client.state() == Board{6, {}});
    CHECK(wire.sent.size() == 1);
}

TEST_CASE("snapshot parts out of order, a part count that changes, or too much text: broken, the events are asked for",
          "[stream_client_snapshot]") {
    Board state{5, {}};
    for (int i = 0; i < 30; ++i) state.words.push_back("wörd" + std::to_string(i));
    const auto parts = snapshot(50, 1, state, 400);
    REQUIRE(parts.size() >= 4);
    auto with = [](const std::string& part, const char* key, std::uint64_t value) {
        auto m = json::parse(part);
        m["payload"][key] = value;
        return m.dump();
    };

    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1), {.max_message_bytes = 400}};
    client.linked("alice");
    const int which = GENERATE(range(0, 7));
    std::vector<std::string> sequence;
    const char* what = "";
    switch (which) {
        case 0:
            what = "a part skipped";
            sequence = {parts[0], parts[2], parts[1], parts[3]};
            break;
        case 1:
            what = "a part without part 0";
            sequence = {parts[1], parts[2]};
            break;
        case 2:
            what = "a part count that changes";
            sequence = {parts[0], with(parts[1], "parts", parts.size() + 1), parts[2]};
            break;
        case 3:
            what = "a position that changes";
            sequence = {parts[0], with(parts[1], "position", 51), parts[2]};
            break;
        case 4:
            what = "a new snapshot before the last one is whole";
            sequence = {parts[0], parts[1], parts[0]};
            break;
        case 5: {
            what = "an unreadable part";
            auto m = json::parse(parts[1]);
            m["payload"].erase("text");
            sequence = {parts[0], m.dump(), parts[2]};
            break;
        }
        default:
            what = "more text than 64 messages";
            sequence = snapshot(50, 1, Board{1, {std::string(400 * 64, 'x')}}, 400);
            break;
    }
    INFO(what);
    CHECK_NOTHROW(receive_all(client, sequence));
    CHECK(client.statistics().snapshots_broken == 1);
    CHECK(client.statistics().snapshots == 0);
    REQUIRE(wire.sent.size() == 1);  // the rest of a broken snapshot is dropped, not asked for again
    CHECK(wire.sent[0] == resync(0, true));
    CHECK(client.sync_status() == krmx::SyncStatus::resyncing);
    CHECK(client.confirmed_size() == 0);
    client.receive(history(50, {}));  // the broken snapshot's history: dropped
    CHECK(client.confirmed_size() == 0);
    client.receive(history(0, {{"bob", event(add(4))}}));
    CHECK(client.synced());
    CHECK(client.state() == Board{4, {}});
    CHECK(wire.sent.size() == 1);
}

TEST_CASE("pending events are kept and replayed on top of a snapshot's state", "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1)};
    client.linked("alice");
    client.receive(history(0, {}));
    REQUIRE(client.synced());
    const auto first = client.dispatch(add(2));
    const auto second = client.dispatch(word("straße"));
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(wire.sent.size() == 2);
    // A gap: the client asks from where it stands, and the server, far ahead, answers with a snapshot.
    client.receive(append(500, "bob", event(add(1))));
    REQUIRE(wire.sent.size() == 3);
    CHECK(wire.sent[2] == resync(0));  // snapshots welcome
    receive_all(client, snapshot(500, 1, Board{10, {"ñ"}}, 120));
    CHECK(client.confirmed_state() == Board{10, {"ñ"}});
    CHECK(client.pending_count() == 2);
    CHECK(client.state() == Board{12, {"ñ", "straße"}});
    client.receive(history(500, {{"bob", event(add(1))}}));
    CHECK(client.synced());
    CHECK(client.state() == Board{13, {"ñ", "straße"}});
    // The server confirms alice's first event at 501: confirmed positions go on from the snapshot's.
    client.receive(append(501, "alice", event(add(2)), *first.id));
    CHECK(client.pending_count() == 1);
    CHECK(client.confirmed_size() == 502);
    CHECK(client.confirmed_state() == Board{13, {"ñ"}});
    CHECK(client.state() == Board{13, {"ñ", "straße"}});
    CHECK(wire.sent.size() == 3);
}

TEST_CASE("after a snapshot, a server event the model refuses rolls back from the snapshot's state and resyncs",
          "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1)};
    client.linked("alice");
    receive_all(client, snapshot(20, 1, Board{10, {}}));
    // `need 8` holds on the snapshot's state (10), not on the initial state (0).
    client.receive(history(20, {{"bob", event(need(8))}}));
    REQUIRE(client.synced());
    REQUIRE(client.confirmed_size() == 21);
    // `bad` writes before it refuses: the confirmed state is replayed from the snapshot's state. From the
    // initial state, `need 8` would be refused in the replay (and the replay would throw).
    CHECK_NOTHROW(client.receive(append(21, "bob", event(bad()))));
    CHECK(client.statistics().divergent == 1);
    CHECK(client.stream().counters().rollbacks == 1);
    CHECK(client.sync_status() == krmx::SyncStatus::resyncing);
    REQUIRE(wire.sent.size() == 1);
    CHECK(wire.sent[0] == resync(0));  // from scratch: what it holds diverged
}

TEST_CASE("an optimistic stream restored at a position goes on from there and rolls back to that state",
          "[stream_client_snapshot]") {
    krmx::OptimisticStream<Board> stream{board_model(1)};
    stream.set_user("alice");
    const auto pending = stream.dispatch(add(1));
    REQUIRE(pending);
    int confirmed_changes = 0;
    auto sub = stream.on_confirmed_change([&](const Board&) { ++confirmed_changes; });
    stream.restore_confirmed_at(Board{10, {"é"}}, 20);
    CHECK(confirmed_changes == 1);
    CHECK(stream.confirmed_size() == 20);
    CHECK(stream.confirmed_log().base() == 20);
    CHECK(stream.confirmed_log().held() == 0);
    CHECK(stream.state() == Board{11, {"é"}});  // the pending event, on top
    CHECK_FALSE(stream.receive("bob", event(add(1)), 0));  // positions go on from 20
    CHECK(stream.receive("bob", event(need(8)), 20));
    CHECK(stream.receive("bob", event(add(5)), 21));
    CHECK_FALSE(stream.receive("bob", event(bad()), 22));  // writes, refuses: rolled back from {10}
    CHECK(stream.counters().rollbacks == 1);
    CHECK(stream.confirmed_state() == Board{15, {"é"}});
    CHECK(stream.confirmed_size() == 23);
    CHECK(stream.state() == Board{16, {"é"}});
    stream.reset();  // and a reset forgets the snapshot's state
    CHECK(stream.confirmed_state() == Board{});
    CHECK(stream.receive("bob", event(add(1)), 0));
    CHECK_FALSE(stream.receive("bob", event(bad()), 1));
    CHECK(stream.confirmed_state() == Board{1, {}});
}

TEST_CASE("a client that asks for its history is answered with a snapshot when it relinks far behind", "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1), {.request_history = true}};
    client.linked("alice");
    REQUIRE(wire.sent.size() == 1);
    CHECK(wire.sent[0] == resync(0));
    client.receive(history(0, {{"bob", event(add(1))}, {"bob", event(add(1))}}));
    REQUIRE(client.synced());
    client.unlinked();
    client.linked("alice");
    REQUIRE(wire.sent.size() == 2);
    CHECK(wire.sent[1] == resync(2));
    receive_all(client, snapshot(300, 1, Board{50, {"ō"}}, 100));
    client.receive(history(300, {{"bob", event(add(1))}}, true));
    client.receive(history(301, {{"carol", event(word("ß"))}}));
    CHECK(client.synced());
    CHECK(client.confirmed_size() == 302);
    CHECK(client.state() == Board{51, {"ō", "ß"}});
    CHECK(wire.sent.size() == 2);

    // A model without snapshots says so in its resyncs: the server then sends events.
    Wire plain_wire;
    krmx::StreamClient plain{plain_wire, domain, board_model(std::nullopt), {.request_history = true}};
    plain.linked("bob");
    REQUIRE(plain_wire.sent.size() == 1);
    CHECK(plain_wire.sent[0] == resync(0, true));
}

TEST_CASE("a history that does not start at the snapshot's position is not trusted", "[stream_client_snapshot]") {
    Wire wire;
    krmx::StreamClient client{wire, domain, board_model(1)};
    client.linked("alice");
    receive_all(client, snapshot(20, 1, Board{10, {}}));
    REQUIRE(client.statistics().snapshots == 1);
    client.receive(history(19, {{"bob", event(add(1))}, {"bob", event(add(1))}}));  // 19 is not what it holds
    CHECK(client.sync_status() == krmx::SyncStatus::resyncing);
    REQUIRE(wire.sent.size() == 1);
    CHECK(wire.sent[0] == resync(0));
    CHECK(client.state() == Board{});
}

TEST_CASE("krmx's C++ clients announce that they read snapshots; the host tells the domains", "[stream_client_snapshot]") {
    CHECK(krmx::detail::resync_message(domain, 4) == R"({"type":"stream/resync","payload":{"domain":"board","position":4}})");
    CHECK(krmx::detail::resync_message(domain, 4, true) ==
          R"({"type":"stream/resync","payload":{"domain":"board","position":4,"snapshot":false}})");
    const auto features = krmx::net::ClientSessionOptions{}.features;
    CHECK(std::find(features.begin(), features.end(), std::string{krmx::snapshot_feature}) != features.end());

    // A domain of its own on the hub's host, to see what the host tells it of each link.
    struct Recorder : krmx::detail::HostedDomain {
        std::vector<std::pair<std::string, krmx::LinkedUser>> links;
        void user_linked(std::string_view user, const krmx::LinkedUser& link) override {
            links.emplace_back(std::string{user}, link);
        }
        void user_unlinked(std::string_view) override {}
        void receive(std::string_view, const krmx::Message&) override {}
        [[nodiscard]] krmx::DomainReport report() const override { return {}; }
    };
    Recorder recorder;
    krmx::testing::Hub hub;
    hub.host().attach("recorder", recorder);
    hub.connect("alice").link();
    hub.run_until_idle();
    CHECK(hub.server().has_feature("alice", "stream/snapshot"));
    krmx::testing::Hub js_hub{{.client = {.features = {"stream/history"}}}};
    js_hub.host().attach("recorder", recorder);
    js_hub.connect("bob").link();
    js_hub.run_until_idle();
    REQUIRE(recorder.links.size() == 2);
    CHECK(recorder.links[0].first == "alice");
    CHECK(recorder.links[0].second.reads_history_pages);
    CHECK(recorder.links[0].second.reads_snapshots);
    CHECK(recorder.links[1].first == "bob");
    CHECK(recorder.links[1].second.reads_history_pages);
    CHECK_FALSE(recorder.links[1].second.reads_snapshots);
    hub.host().detach("recorder");
    js_hub.host().detach("recorder");
}

}  // namespace snapshot_client_tests
