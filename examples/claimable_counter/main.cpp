// The claimable counter of Krmx State, multiplayer: one server and four players in one process, wired
// through krmx::testing::Hub with a different latency per player. Every player applies its own events at
// once (optimistically); the server decides. The timeline shows, after every step, each player's
// optimistic/confirmed counter, how many of its events are pending, and who holds the claim.
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/testing/hub.hpp>
#include <krmx/version.hpp>

#include "counter.hpp"

using namespace std::chrono_literals;

namespace {

constexpr const char* domain = "my-claimable-counter";

struct Player {
    std::string name;
    krmx::testing::ClientEndpoint* connection;
    std::unique_ptr<krmx::StreamClient<Counter>> stream;
};

class Demo {
  public:
    Demo() {
        trace_ = hub_.on_delivery([this](const krmx::testing::Delivery& d) { describe(d); });
    }

    Player& join(const std::string& name, std::chrono::milliseconds latency) {
        auto& connection = hub_.connect(name, latency);
        auto& player = players_.emplace_back(Player{
            name, &connection,
            std::make_unique<krmx::StreamClient<Counter>>(
                connection, domain, counter::model(), krmx::StreamClientOptions{.optimistic_seconds = 10})});
        connection.link();
        line("%s connects (%lld ms each way) and asks to link", name.c_str(),
             static_cast<long long>(latency.count()));
        return player;
    }

    template <class Event>
    void play(Player& player, const char* label, const Event& event) {
        const auto sent = player.stream->dispatch(event);
        if (sent) {
            line("%s: %s, applied at once, sent as #%llu", player.name.c_str(), label,
                 static_cast<unsigned long long>(*sent.id));
        } else {
            line("%s: %s, refused locally (%s)", player.name.c_str(), label,
                 std::string{sent.result.reason()}.c_str());
        }
    }

    void run_until_idle() { hub_.run_until_idle(); }
    void advance(std::chrono::milliseconds by) { hub_.advance(by); }
    void section(const char* title) { std::printf("\n-- %s\n", title); }

    // Every player agrees with the server, nothing pending.
    bool converged() const {
        bool all = true;
        std::printf("\nserver: %s after %zu events\n", show(server_.state()).c_str(), server_.size());
        for (const auto& p : players_) {
            const bool ok = p.stream->state() == server_.state() &&
                            p.stream->confirmed_state() == server_.state() &&
                            p.stream->pending_count() == 0 && p.stream->synced();
            std::printf("%-6s %s, %zu pending, %s\n", p.name.c_str(), show(p.stream->state()).c_str(),
                        p.stream->pending_count(), ok ? "converged" : "DIVERGED");
            all = all && ok;
        }
        return all;
    }

    void header() const {
        std::printf("%7s  %-58s", "time", "what happened");
        for (const char* name : {"alice", "bob", "carol", "dave"}) std::printf(" %-13s", name);
        std::printf("\n");
    }

  private:
    static std::string show(const Counter& s) {
        return "counter=" + std::to_string(s.counter) +
               " claim=" + (s.claim ? *s.claim : std::string{"nobody"});
    }

    // optimistic/confirmed, pending count, claim holder: "7/4 p2 bob"
    std::string column(const char* name) const {
        for (const auto& p : players_) {
            if (p.name != name) continue;
            if (!p.stream->linked()) return "(linking)";
            const auto& s = p.stream->state();
            char buffer[64];
            std::snprintf(buffer, sizeof buffer, "%d/%d p%zu %s", s.counter,
                          p.stream->confirmed_state().counter, p.stream->pending_count(),
                          s.claim ? s.claim->c_str() : "-");
            return buffer;
        }
        return "";
    }

    template <class... Args>
    void line(const char* format, Args... args) {
        char what[160];
        if constexpr (sizeof...(Args) == 0) {
            std::snprintf(what, sizeof what, "%s", format);
        } else {
            std::snprintf(what, sizeof what, format, args...);
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(hub_.elapsed()).count();
        std::printf("%5lldms  %-58s", static_cast<long long>(ms), what);
        for (const char* name : {"alice", "bob", "carol", "dave"})
            std::printf(" %-13s", column(name).c_str());
        std::printf("\n");
    }

    static std::string brief(const nlohmann::json& event) {
        std::string out = event.value("type", std::string{"?"}) + "(";
        if (event.contains("payload")) out += event["payload"].dump();
        return out + ")";
    }

    void describe(const krmx::testing::Delivery& d) {
        using Kind = krmx::testing::Delivery::Kind;
        const std::string user{d.user};
        switch (d.kind) {
            case Kind::link:
                line("server: %s linked, history sent", user.c_str());
                return;
            case Kind::accepted:
            case Kind::session:
                return;  // the history right behind it tells the story
            case Kind::unlink:
            case Kind::leave:
            case Kind::unlinked:
                line("%s unlinked", user.c_str());
                return;
            case Kind::rejected:
                line("%s: refused by the session", user.c_str());
                return;
            case Kind::closed:
                line("%s: connection closed by the server", user.c_str());
                return;
            case Kind::message:
                break;
        }
        const auto message = nlohmann::json::parse(d.text);
        const auto& payload = message["payload"];
        const std::string type = message["type"];
        if (d.to_server) {
            const bool accepted = server_.statistics().accepted > accepted_seen_;
            accepted_seen_ = server_.statistics().accepted;
            const std::string id = std::to_string(payload.value("id", 0ull));
            if (accepted) {
                line("server <- %s #%s %s: accepted at %zu", user.c_str(), id.c_str(),
                     brief(payload["event"]).c_str(), server_.size() - 1);
            } else {
                line("server <- %s #%s %s: refused, invalidate sent", user.c_str(), id.c_str(),
                     brief(payload["event"]).c_str());
            }
        } else if (type == "stream/history") {
            line("%s <- history: %zu events", user.c_str(), payload["events"].size());
        } else if (type == "stream/append") {
            const std::string by = payload["dispatcher"];
            const bool own = by == user && payload.contains("id");
            line("%s <- %s %s at %llu%s", user.c_str(), by.c_str(), brief(payload["event"]).c_str(),
                 payload["position"].get<unsigned long long>(),
                 own ? (", confirms #" + std::to_string(payload["id"].get<unsigned long long>())).c_str()
                     : "");
        } else if (type == "stream/invalidate") {
            line("%s <- invalidate #%llu: %s", user.c_str(), payload.value("id", 0ull),
                 payload.value("reason", std::string{}).c_str());
        }
    }

    krmx::testing::Hub hub_;
    krmx::StreamDomain<Counter> server_{hub_, domain, counter::model()};
    std::deque<Player> players_;  // stable addresses: players are held by reference
    std::uint64_t accepted_seen_ = 0;
    krmx::Subscription trace_;
};

}  // namespace

int main() {
    std::printf("krmx %s: the claimable counter, multiplayer through krmx::testing::Hub\n",
                krmx::version_string);
    std::printf("columns per player: optimistic/confirmed counter, pending events, claim holder\n\n");
    Demo demo;
    demo.header();

    demo.section("three players link; each gets the (empty) history");
    auto& alice = demo.join("alice", 20ms);
    auto& bob = demo.join("bob", 60ms);
    auto& carol = demo.join("carol", 110ms);
    demo.run_until_idle();

    demo.section("everyone increments at once: applied locally at once, confirmed one round trip later");
    demo.play(alice, "increment(1)", counter::increment(1));
    demo.play(bob, "increment(2)", counter::increment(2));
    demo.play(carol, "increment(3)", counter::increment(3));
    demo.run_until_idle();

    demo.section("bob and carol both claim; bob's claim arrives first, carol loses hers and her increment");
    demo.play(bob, "claim()", counter::claim());
    demo.play(carol, "claim()", counter::claim());
    demo.play(carol, "increment(5)", counter::increment(5));
    demo.advance(20ms);
    demo.play(alice, "increment(1)", counter::increment(1));  // bob's claim has not reached alice yet
    demo.run_until_idle();

    demo.section("bob, holding the claim, counts on and releases");
    demo.play(bob, "increment(10)", counter::increment(10));
    demo.play(bob, "release()", counter::release());
    demo.run_until_idle();

    demo.section("dave joins late and rebuilds the counter from the history");
    auto& dave = demo.join("dave", 40ms);
    demo.run_until_idle();
    demo.play(dave, "increment(4)", counter::increment(4));
    demo.run_until_idle();

    const bool ok = demo.converged();
    std::printf("%s\n", ok ? "every player converged on the server's state" : "NOT CONVERGED");
    return ok ? 0 : 1;
}
