// Memory, restarts and late joiners of a durable SQLite domain (run_memory.sh runs it once per size and
// mode, each in a process of its own, so that every RSS figure is that run's alone).
//
//   krmx_memory_bench --events N --mode tail|whole --dir DIR [--restart] [--joiner]
//
// --mode whole: every event stays in memory (the tail is unbounded, no snapshots): what a durable domain
//   did before it kept a tail (it also refused every event past max_history_bytes, which is lifted here so
//   that the curve goes on).
// --mode tail: the default memory policy (a tail of 64 Ki events) with snapshots in the same SQLite file
//   (at least one every quarter of the run).
// --restart: then times a restart from the newest snapshot, and one that replays the whole stream.
// --joiner: then a C++ client links, once with a model that reads snapshots and once with one that does not,
//   and the bytes it received and the time to synced are reported.
// Prints one JSON object. RSS is read from /proc/self/status (VmRSS, VmHWM).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "claimable_counter/counter.hpp"
#include "krmx/store/sqlite_checkpoint_store.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "krmx/sync/durable.hpp"
#include "krmx/sync/stream_client.hpp"
#include "krmx/sync/stream_domain.hpp"
#include "krmx/testing/hub.hpp"

namespace {

using Seconds = std::chrono::duration<double>;
constexpr const char* counter_domain_name = "counter";

// Kilobytes of a /proc/self/status line ("VmRSS:", "VmHWM:").
double status_mib(std::string_view key) {
    std::ifstream status{"/proc/self/status"};
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(key, 0) == 0) return std::strtod(line.c_str() + key.size(), nullptr) / 1024.0;
    }
    return 0;
}

// The default policy, with a snapshot at least every quarter of the run (the default, every 64 Ki events,
// from 256 Ki events on), so that a short run restarts from one too.
krmx::MemoryPolicy policy(bool whole, std::size_t events) {
    if (!whole) {
        krmx::MemoryPolicy policy;
        policy.snapshot_every_events = std::min(policy.snapshot_every_events, std::max<std::size_t>(1, events / 4));
        return policy;
    }
    constexpr auto all = std::numeric_limits<std::size_t>::max();
    return {.tail_events = all, .tail_bytes = all, .snapshot_every_events = all, .snapshot_every_bytes = all};
}

template <class Store, class Checkpoints>
krmx::StreamDomainOptions domain_options(Store& store, Checkpoints* checkpoints, bool whole, std::size_t events) {
    krmx::DurableOptions durable{.memory = policy(whole, events)};
    if (checkpoints) durable.snapshots = *checkpoints;
    return {.max_history_bytes = std::numeric_limits<std::size_t>::max(), .durability = krmx::durable(store, durable)};
}

// A C++ client links and syncs: the bytes of the messages it received, and the time until synced.
std::pair<std::size_t, double> join(krmx::testing::Hub& hub, const std::string& name, const krmx::StreamModel<Counter>& model) {
    auto& connection = hub.connect(name, krmx::Duration{0});
    connection.keep_received(false);
    std::size_t bytes = 0;
    auto counting = connection.on_message([&](std::string_view text) { bytes += text.size(); });
    krmx::StreamClient<Counter> client{connection, counter_domain_name, model};
    const auto start = std::chrono::steady_clock::now();
    connection.link();
    while (!client.synced() && hub.step()) {
    }
    hub.run_until_idle();
    const double seconds = Seconds(std::chrono::steady_clock::now() - start).count();
    if (!client.synced()) throw std::runtime_error("the joiner did not sync");
    connection.unlink();
    hub.run_until_idle();
    return {bytes, seconds};
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t events = 100000;
    bool whole = false;
    bool restart = false;
    bool joiner = false;
    std::filesystem::path dir = std::filesystem::temp_directory_path();
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--events" && i + 1 < argc) {
            events = std::stoull(argv[++i]);
        } else if (arg == "--mode" && i + 1 < argc) {
            whole = std::string_view{argv[++i]} == "whole";
        } else if (arg == "--dir" && i + 1 < argc) {
            dir = argv[++i];
        } else if (arg == "--restart") {
            restart = true;
        } else if (arg == "--joiner") {
            joiner = true;
        } else {
            std::cerr << "usage: krmx_memory_bench --events N --mode tail|whole --dir DIR [--restart] [--joiner]\n";
            return 2;
        }
    }
    try {
        const auto path = dir / ("memory-" + std::to_string(events) + (whole ? "-whole" : "-tail") + ".sqlite");
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
        nlohmann::json out = {{"events", events}, {"mode", whole ? "whole" : "tail"}};
        {
        krmx::SqliteEventStore store{path, {.durability = krmx::SqliteDurability::group_commit}};
        krmx::SqliteCheckpointStore checkpoints{path};
        krmx::testing::Hub hub;
        const double baseline = status_mib("VmRSS:");
        {
            const auto& model = whole ? counter::model() : counter::model_with_snapshots();
            krmx::StreamDomain server{hub, counter_domain_name, model,
                                      domain_options(store, whole ? nullptr : &checkpoints, whole, events)};
            const auto start = std::chrono::steady_clock::now();
            std::string player = "player-00";
            for (std::size_t i = 0; i < events; ++i) {
                player[7] = static_cast<char>('0' + i % 10);
                player[8] = static_cast<char>('0' + (i / 10) % 10);
                if (!server.dispatch(player, counter::increment(1))) throw std::runtime_error("an event was refused");
                if (i % 4096 == 4095) hub.run_until_idle();
            }
            hub.run_until_idle();
            out["accept_seconds"] = Seconds(std::chrono::steady_clock::now() - start).count();
            out["rss_mib"] = status_mib("VmRSS:") - baseline;
            out["peak_rss_mib"] = status_mib("VmHWM:") - baseline;
            out["held_events"] = server.stream().log().held();
            out["held_from"] = server.held_from();
            out["snapshots_saved"] = server.snapshot_statistics().saved;
            if (server.state().counter != static_cast<int>(events)) throw std::runtime_error("wrong state");
        }
        if (restart && !whole) {
            auto start = std::chrono::steady_clock::now();
            {
                krmx::StreamDomain server{hub, counter_domain_name, counter::model_with_snapshots(),
                                          domain_options(store, &checkpoints, false, events)};
                out["restart_snapshot_seconds"] = Seconds(std::chrono::steady_clock::now() - start).count();
                out["restart_snapshot_replayed"] = server.statistics().restored;
                if (server.snapshot_statistics().restored != 1) throw std::runtime_error("no snapshot restored");
            }
            start = std::chrono::steady_clock::now();
            {
                krmx::StreamDomain server{hub, counter_domain_name, counter::model(),
                                          domain_options(store, static_cast<krmx::SqliteCheckpointStore*>(nullptr), false, events)};
                out["restart_full_seconds"] = Seconds(std::chrono::steady_clock::now() - start).count();
                out["restart_full_replayed"] = server.statistics().restored;
            }
        }
        if (joiner && !whole) {
            krmx::StreamDomain server{hub, counter_domain_name, counter::model_with_snapshots(),
                                      domain_options(store, &checkpoints, false, events)};
            const auto [snapshot_bytes, snapshot_seconds] =
                join(hub, "snapshot-reader", counter::model_with_snapshots());
            const auto [event_bytes, event_seconds] = join(hub, "event-reader", counter::model());
            out["joiner_snapshot_bytes"] = snapshot_bytes;
            out["joiner_snapshot_seconds"] = snapshot_seconds;
            out["joiner_events_bytes"] = event_bytes;
            out["joiner_events_seconds"] = event_seconds;
        }
        }
        std::cout << out.dump() << std::endl;
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
    } catch (const std::exception& e) {
        std::cerr << "krmx_memory_bench: " << e.what() << "\n";
        return 1;
    }
}
