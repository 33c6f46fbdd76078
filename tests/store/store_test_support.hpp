#pragma once
// Shared by the store tests: store factories for the contract suite, temporary directories and a
// subscription recorder that tests can wait on.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "temp_dir.hpp"

#include "krmx/store/event_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#if defined(KRMX_TEST_SQLITE)
#include "krmx/store/sqlite_event_store.hpp"
#endif
#if defined(KRMX_TEST_POSTGRES)
#include "krmx/store/postgres_event_store.hpp"
#include "postgres_server.hpp"
#endif

namespace krmx::testing {

struct MemoryStoreFactory {
    using Store = MemoryEventStore;
    static constexpr const char* name = "memory";
    std::unique_ptr<Store> open() { return std::make_unique<Store>(); }
};

#if defined(KRMX_TEST_SQLITE)
template <SqliteDurability durability>
struct SqliteStoreFactory {
    using Store = SqliteEventStore;
    static constexpr const char* name =
        durability == SqliteDurability::synced ? "sqlite synced" : "sqlite group";
    TempDir dir;
    int opened = 0;
    std::unique_ptr<Store> open() {
        return std::make_unique<Store>(dir.path() / ("events-" + std::to_string(opened++) + ".sqlite"),
                                       SqliteEventStoreOptions{.durability = durability});
    }
};
using SqliteSyncedFactory = SqliteStoreFactory<SqliteDurability::synced>;
using SqliteGroupFactory = SqliteStoreFactory<SqliteDurability::group_commit>;
using SqliteFactories = std::tuple<SqliteSyncedFactory, SqliteGroupFactory>;
#else
using SqliteFactories = std::tuple<>;
#endif

#if defined(KRMX_TEST_POSTGRES)
/// Each factory (one per test case) gets a schema of its own on the executable's one server; each open()
/// a fresh schema too, as each SQLite open() gets a fresh file.
struct PostgresStoreFactory {
    using Store = PostgresEventStore;
    static constexpr const char* name = "postgres";
    std::string schema = unique_postgres_schema("store");
    int opened = 0;
    [[nodiscard]] PostgresOptions database() const {
        return {.connection = shared_postgres().conninfo(), .schema = schema};
    }
    std::unique_ptr<Store> open() {
        return std::make_unique<Store>(
            PostgresOptions{.connection = shared_postgres().conninfo(),
                            .schema = schema + "_" + std::to_string(opened++)},
            PostgresEventStoreOptions{.durability = PostgresDurability::group_commit});
    }
};
using PostgresFactories = std::tuple<PostgresStoreFactory>;
#else
using PostgresFactories = std::tuple<>;
#endif

using StoreFactories =
    decltype(std::tuple_cat(std::tuple<MemoryStoreFactory>{}, SqliteFactories{}, PostgresFactories{}));

/// `size` random letters and digits (the same for the same `seed`): valid UTF-8 that does not compress, as
/// PostgreSQL would compress a long index entry of repeated characters until it fits.
inline std::string random_name(std::size_t size, unsigned seed) {
    static constexpr std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::mt19937 generator{seed};
    std::uniform_int_distribution<std::size_t> pick{0, alphabet.size() - 1};
    std::string name(size, ' ');
    for (char& c : name) c = alphabet[pick(generator)];
    return name;
}

/// An event with a type and a payload, and optionally an id.
inline NewEvent event(std::string type, nlohmann::json payload = nullptr, std::string id = {}) {
    NewEvent e;
    e.id = std::move(id);
    e.type = std::move(type);
    if (!payload.is_null()) e.payload = std::move(payload);
    return e;
}

/// Records what a subscription delivers; tests wait on it with a timeout rather than sleeping.
class Recorder {
  public:
    SubscriptionHandlers handlers() {
        return SubscriptionHandlers{
            .on_event =
                [this](const RecordedEvent& e) {
                    {
                        std::lock_guard lock{mutex_};
                        if (!events_.empty() && e.position <= events_.back().position) ++out_of_order_;
                        events_.push_back(e);
                    }
                    changed_.notify_all();
                },
            .on_caught_up =
                [this] {
                    {
                        std::lock_guard lock{mutex_};
                        ++caught_up_;
                        caught_up_after_ = events_.size();
                    }
                    changed_.notify_all();
                },
            .on_error =
                [this](std::exception_ptr error) {
                    {
                        std::lock_guard lock{mutex_};
                        error_ = error;
                    }
                    changed_.notify_all();
                },
        };
    }

    bool wait_for_events(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return events_.size() >= count || error_; }) &&
               events_.size() >= count;
    }
    bool wait_caught_up(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return caught_up_ > 0; });
    }
    bool wait_error(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return error_ != nullptr; });
    }

    std::vector<RecordedEvent> events() const {
        std::lock_guard lock{mutex_};
        return events_;
    }
    std::vector<Position> positions() const {
        std::lock_guard lock{mutex_};
        std::vector<Position> result;
        for (const auto& e : events_) result.push_back(e.position);
        return result;
    }
    int caught_up() const {
        std::lock_guard lock{mutex_};
        return caught_up_;
    }
    std::size_t caught_up_after() const {
        std::lock_guard lock{mutex_};
        return caught_up_after_;
    }
    int out_of_order() const {
        std::lock_guard lock{mutex_};
        return out_of_order_;
    }
    std::exception_ptr error() const {
        std::lock_guard lock{mutex_};
        return error_;
    }

  private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<RecordedEvent> events_;
    int caught_up_ = 0;
    std::size_t caught_up_after_ = 0;
    int out_of_order_ = 0;
    std::exception_ptr error_;
};

}  // namespace krmx::testing
