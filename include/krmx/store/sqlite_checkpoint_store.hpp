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
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/detail/sqlite_checkpoint_rows.hpp"
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
        return detail::load_checkpoint_row(*connection_, key);
    }

    void save(std::string_view key, const Checkpoint& checkpoint) {
        std::lock_guard lock{mutex_};
        detail::save_checkpoint_row(*connection_, key, checkpoint);
    }

    bool erase(std::string_view key) {
        std::lock_guard lock{mutex_};
        return detail::erase_checkpoint_row(*connection_, key);
    }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
    mutable std::mutex mutex_;  // one connection, one thread at a time
    std::unique_ptr<detail::SqliteConnection> connection_;
};

static_assert(CheckpointStore<SqliteCheckpointStore>);

}  // namespace krmx
