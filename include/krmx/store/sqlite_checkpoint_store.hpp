#pragma once
// Checkpoints in an SQLite file (WAL mode); may share the file of a SqliteEventStore. Link `krmx::sqlite`.
// Commits are not fsynced (`synchronous=NORMAL`): a checkpoint lost to a power cut only means a longer
// replay, and the file is never corrupted. Each row carries a checksum verified on load.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class SqliteCheckpointStore {
  public:
    explicit SqliteCheckpointStore(std::filesystem::path path) : path_(std::move(path)) {
        connection_ = detail::open_krmx_file(path_);
        connection_->exec("PRAGMA synchronous=NORMAL");
    }

    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        std::lock_guard lock{mutex_};
        auto& select = connection_->statement(
            "SELECT state, position, version, checksum FROM krmx_checkpoints WHERE key = ?1");
        detail::Reset reset{select};
        select.bind(1, key);
        if (!select.step()) return std::nullopt;
        const std::string_view state = select.text(0);
        const auto position = static_cast<Position>(select.int64(1));
        const std::string_view version = select.text(2);
        if (checksum(key, state, position, version) != select.int64(3)) {
            throw CorruptRecord("the checkpoint '" + std::string{key} +
                                "' failed its checksum: it is damaged");
        }
        Checkpoint checkpoint;
        try {
            checkpoint.state = nlohmann::json::parse(state.begin(), state.end());
        } catch (const nlohmann::json::exception& e) {
            throw CorruptRecord("the checkpoint '" + std::string{key} + "' does not parse: " + e.what());
        }
        checkpoint.position = position;
        checkpoint.version = version;
        return checkpoint;
    }

    void save(std::string_view key, const Checkpoint& checkpoint) {
        const std::string state = detail::serialize_json(checkpoint.state, "checkpoint state");
        const auto saved_at = std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        std::lock_guard lock{mutex_};
        auto& upsert = connection_->statement(
            "INSERT INTO krmx_checkpoints (key, state, position, version, saved_at, checksum) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
            "position = excluded.position, version = excluded.version, saved_at = excluded.saved_at, "
            "checksum = excluded.checksum");
        detail::Reset reset{upsert};
        upsert.bind(1, key);
        upsert.bind(2, std::string_view{state});
        upsert.bind(3, static_cast<std::int64_t>(checkpoint.position));
        upsert.bind(4, std::string_view{checkpoint.version});
        upsert.bind(5, static_cast<std::int64_t>(saved_at.count()));
        upsert.bind(6, checksum(key, state, checkpoint.position, checkpoint.version));
        upsert.run();
    }

    bool erase(std::string_view key) {
        std::lock_guard lock{mutex_};
        auto& remove = connection_->statement("DELETE FROM krmx_checkpoints WHERE key = ?1");
        detail::Reset reset{remove};
        remove.bind(1, key);
        remove.run();
        return sqlite3_changes(connection_->handle()) > 0;
    }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    static std::int64_t checksum(std::string_view key, std::string_view state, Position position,
                                 std::string_view version) {
        return static_cast<std::int64_t>(
            detail::RecordHasher{}.add(key).add(state).add(position).add(version).value());
    }

    std::filesystem::path path_;
    mutable std::mutex mutex_;  // one connection, one thread at a time
    std::unique_ptr<detail::SqliteConnection> connection_;
};

static_assert(CheckpointStore<SqliteCheckpointStore>);

}  // namespace krmx
