// The child of the pipelined-durability crash test: a StreamDomain of the claimable counter, durable on a
// synced SQLite store with pipelined commits, under load from three in-process clients (testing Hub).
// Each `stream/append` a client receives is reported on stdout the moment the first client receives it:
// "<position> <event JSON>". The parent kills this process with SIGKILL at some moment and checks that
// every reported event is in the store.
// Usage: krmx_sync_tests --krmx-child krmx_sync_pipelined_server <file> <seed> [snapshots]
// With `snapshots`, the domain keeps a tail of 64 events and saves a snapshot every 20 (in the same file):
// the kill then lands while snapshots are written as often as commits.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/store/sqlite_checkpoint_store.hpp>
#include <krmx/store/sqlite_event_store.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/sync/stream_messages.hpp>
#include <krmx/testing/hub.hpp>

#include "claimable_counter/counter.hpp"

#include "test_child.hpp"

namespace child_krmx_sync_pipelined_server {

namespace {

void report(const std::string& line) {
    // write(2), not stdio: a confirmation must be in the pipe before anything else happens.
    std::size_t written = 0;
    while (written < line.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, line.data() + written, line.size() - written);
        if (n <= 0) std::_Exit(3);
        written += static_cast<std::size_t>(n);
    }
}

struct Sender {
    std::string name;
    krmx::testing::ClientEndpoint* connection = nullptr;
    std::size_t outstanding = 0;
    std::uint64_t next_id = 1;
    krmx::Subscription subscription;
};

}  // namespace

int run(int argc, char** argv) {
    if (argc != 3 && !(argc == 4 && std::string{argv[3]} == "snapshots")) {
        std::fprintf(stderr, "usage: %s <file> <seed> [snapshots]\n", argv[0]);
        return 2;
    }
    std::mt19937 random{static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10))};
    krmx::SqliteEventStore store{argv[1], {.durability = krmx::SqliteDurability::synced}};
    krmx::SqliteCheckpointStore checkpoints{argv[1]};
    krmx::testing::Hub hub;
    // Pipelined: commits on the durability's writer thread, completed through the hub's loop.
    auto model = counter::model();
    krmx::DurableOptions durable;
    if (argc == 4) {
        model.snapshots(1);
        durable.memory = {.tail_events = 64, .snapshot_every_events = 20};
        durable.snapshots = checkpoints;
    }
    krmx::StreamDomain server{hub, "counter", model, {.durability = krmx::durable(store, durable)}};

    std::vector<bool> seen;
    std::vector<Sender> senders(3);
    for (std::size_t i = 0; i < senders.size(); ++i) {
        auto& sender = senders[i];
        sender.name = std::string{"player-"} + static_cast<char>('a' + i);
        sender.connection = &hub.connect(sender.name, std::chrono::milliseconds{0});
        sender.connection->keep_received(false);
        sender.subscription = sender.connection->on_message([&sender, &seen](std::string_view text) {
            const auto message = nlohmann::json::parse(text);
            const auto& payload = message["payload"];
            if (message["type"] == "stream/append") {
                const auto position = payload["position"].get<std::size_t>();
                if (position >= seen.size()) seen.resize(position + 1);
                if (!seen[position]) {
                    seen[position] = true;
                    report(std::to_string(position) + " " + payload["event"].dump() + "\n");
                }
                if (payload["dispatcher"] == sender.name && payload.contains("id")) --sender.outstanding;
            } else if (message["type"] == "stream/invalidate") {
                --sender.outstanding;
            }
        });
        sender.connection->link();
    }
    hub.run_until_idle();
    report("ready\n");

    for (;;) {
        for (auto& sender : senders) {
            const std::size_t window = 8 + random() % 56;
            while (sender.outstanding < window) {
                const std::string event =
                    R"({"type":"increment","payload":)" + std::to_string(random() % 3) + "}";
                sender.connection->send(
                    krmx::detail::client_append_message("counter", sender.name, event, sender.next_id++));
                ++sender.outstanding;
            }
        }
        while (hub.step()) {
        }
    }
}

}  // namespace child_krmx_sync_pipelined_server

KRMX_TEST_CHILD(krmx_sync_pipelined_server, child_krmx_sync_pipelined_server::run);
