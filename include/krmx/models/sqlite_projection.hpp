#pragma once
// The SQLite database as a projection target. Link `krmx::sqlite`.
//
// A read model's reducer writes rows through `execute`; the rows and the model's checkpoint are committed
// in one transaction, so a crash never leaves them apart: after a restart the rows are exactly those of
// the checkpointed position, and the runner replays from there. Used with a ReadModelRunner as its
// checkpoint storage:
//
//   krmx::SqliteProjection db{"available.sqlite"};
//   db.execute("CREATE TABLE IF NOT EXISTS available (book_id TEXT PRIMARY KEY, copies INTEGER)");
//   auto model = krmx::ReadModel<krmx::NoState>{"available", 1, catalog}
//       .reduce([&db](const krmx::CatalogEvent& e) { db.execute("INSERT ...", {...}); })
//       .on_reset([&db] { db.execute("DELETE FROM available"); });  // before a replay from the start
//   krmx::ReadModelRunner runner{model, store};
//   runner.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(1000));
//
// A transaction opens with the first event after a checkpoint and commits with the next checkpoint, so
// rows become visible to other connections in steps of the strategy (with `manual`, only when the runner's
// `checkpoint()` is called; uncommitted rows are rolled back when the run fails or the projection closes).
// While a batch is open the projection holds the file's write lock: give the projection a file of its own.
// The checkpoint row is the one SqliteCheckpointStore reads (same table, same checksum).
// When the model starts from the first event (a new projection, or a revision bump that discards the
// checkpoint), the runner opens a batch, runs the model's `on_reset` hook and saves the reset checkpoint,
// which commits both: the rows are never cleared without the checkpoint, nor the other way round.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/models/sql_value.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/detail/sqlite_checkpoint_rows.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class SqliteProjection {
  public:
    explicit SqliteProjection(std::filesystem::path path) : path_(std::move(path)) {
        connection_ = detail::open_krmx_file(path_);
        connection_->exec("PRAGMA synchronous=NORMAL");
    }
    SqliteProjection(const SqliteProjection&) = delete;
    SqliteProjection& operator=(const SqliteProjection&) = delete;
    ~SqliteProjection() {
        try {
            abort_batch();
        } catch (...) {
            // Nowhere left to count it: the projection is going away, and closing its connection rolls back.
        }
    }

    /// Runs one SQL statement with `?1, ?2, ...` parameters (in the open batch, if any). Statements are
    /// prepared once and cached by their text.
    void execute(std::string_view sql, std::initializer_list<SqlValue> parameters = {}) {
        std::lock_guard lock{mutex_};
        auto* statement = prepared(sql);
        bind(statement, parameters);
        const int code = sqlite3_step(statement);
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
        if (code != SQLITE_DONE && code != SQLITE_ROW) detail::throw_sqlite(connection_->handle(), code, sql);
    }

    /// Runs a query and returns every row.
    [[nodiscard]] std::vector<SqlRow> query(std::string_view sql,
                                            std::initializer_list<SqlValue> parameters = {}) {
        std::lock_guard lock{mutex_};
        auto* statement = prepared(sql);
        bind(statement, parameters);
        std::vector<SqlRow> rows;
        int code = SQLITE_OK;
        while ((code = sqlite3_step(statement)) == SQLITE_ROW) {
            SqlRow row;
            for (int c = 0; c < sqlite3_column_count(statement); ++c) row.push_back(column(statement, c));
            rows.push_back(std::move(row));
        }
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
        if (code != SQLITE_DONE) detail::throw_sqlite(connection_->handle(), code, sql);
        return rows;
    }

    // ---- checkpoint storage (the CheckpointStore concept), plus the batch hooks the runner calls ----

    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        std::lock_guard lock{mutex_};
        return detail::load_checkpoint_row(*connection_, key);
    }

    /// Writes the checkpoint row and commits it together with the rows of the open batch.
    void save(std::string_view key, const Checkpoint& checkpoint) {
        std::lock_guard lock{mutex_};
        detail::save_checkpoint_row(*connection_, key, checkpoint);
        if (in_batch()) connection_->exec("COMMIT");
        ++commits_;
    }

    bool erase(std::string_view key) {
        std::lock_guard lock{mutex_};
        return detail::erase_checkpoint_row(*connection_, key);
    }

    /// Opens a transaction unless one is open (the runner calls it before each event).
    void begin_batch() {
        std::lock_guard lock{mutex_};
        if (!in_batch()) connection_->exec("BEGIN IMMEDIATE");
    }
    /// Rolls back the rows written since the last checkpoint (the runner calls it when a run fails).
    void abort_batch() {
        std::lock_guard lock{mutex_};
        if (in_batch()) connection_->exec("ROLLBACK");
    }

    /// Transactions committed with a checkpoint.
    [[nodiscard]] std::uint64_t commits() const noexcept { return commits_; }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    [[nodiscard]] bool in_batch() const noexcept {
        return sqlite3_get_autocommit(connection_->handle()) == 0;
    }

    sqlite3_stmt* prepared(std::string_view sql) {
        auto& slot = statements_[std::string{sql}];
        if (!slot) {
            sqlite3_stmt* statement = nullptr;
            const int code =
                sqlite3_prepare_v3(connection_->handle(), sql.data(), static_cast<int>(sql.size()),
                                   SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
            if (code != SQLITE_OK) detail::throw_sqlite(connection_->handle(), code, sql);
            slot = std::unique_ptr<sqlite3_stmt, Finalize>{statement};
        }
        return slot.get();
    }

    void bind(sqlite3_stmt* statement, std::initializer_list<SqlValue> parameters) {
        int index = 1;
        for (const auto& value : parameters) {
            int code = SQLITE_OK;
            if (std::holds_alternative<std::nullptr_t>(value)) {
                code = sqlite3_bind_null(statement, index);
            } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
                code = sqlite3_bind_int64(statement, index, *i);
            } else if (const auto* d = std::get_if<double>(&value)) {
                code = sqlite3_bind_double(statement, index, *d);
            } else {
                const auto& text = std::get<std::string>(value);
                code = sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()),
                                         SQLITE_TRANSIENT);
            }
            if (code != SQLITE_OK) detail::throw_sqlite(connection_->handle(), code, "binding a parameter");
            ++index;
        }
    }

    static SqlValue column(sqlite3_stmt* statement, int c) {
        switch (sqlite3_column_type(statement, c)) {
            case SQLITE_INTEGER:
                return SqlValue{static_cast<std::int64_t>(sqlite3_column_int64(statement, c))};
            case SQLITE_FLOAT:
                return SqlValue{sqlite3_column_double(statement, c)};
            case SQLITE_NULL:
                return SqlValue{nullptr};
            default: {
                const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement, c));
                const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement, c));
                return SqlValue{std::string{data == nullptr ? "" : data, size}};
            }
        }
    }

    struct Finalize {
        void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
    };

    std::filesystem::path path_;
    mutable std::mutex mutex_;
    std::unique_ptr<detail::SqliteConnection> connection_;
    std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, Finalize>> statements_;
    std::uint64_t commits_ = 0;
};

static_assert(CheckpointStore<SqliteProjection>);

}  // namespace krmx
