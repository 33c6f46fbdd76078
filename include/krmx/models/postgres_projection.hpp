#pragma once
// A PostgreSQL schema as a projection target. Link `krmx::postgres`. The PostgreSQL twin of
// SqliteProjection (same shape, same runner hooks).
//
// A read model's reducer writes rows through `execute`; the rows and the model's checkpoint are committed
// in one transaction, so a crash never leaves them apart: after a restart the rows are exactly those of
// the checkpointed position, and the runner replays from there. Used with a ReadModelRunner as its
// checkpoint storage:
//
//   krmx::PostgresProjection db{{.connection = url, .schema = "bookstore_views"}};
//   db.execute("CREATE TABLE IF NOT EXISTS available (book_id text PRIMARY KEY, copies bigint)");
//   auto model = krmx::ReadModel<krmx::NoState>{"available", 1, catalog}.reduce(
//       [&db](const krmx::CatalogEvent& e) { db.execute("INSERT ... VALUES ($1, $2) ...", {...}); });
//   krmx::ReadModelRunner runner{model, store};
//   runner.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(1000));
//
// A transaction opens with the first event after a checkpoint and commits with the next checkpoint, so
// rows become visible to other connections in steps of the strategy. Unqualified table names resolve in
// the projection's schema first (`search_path`). Parameters are `$1, $2, ...`. A connection lost in the
// middle of a batch loses that batch's rows (never the checkpoint without its rows): the run fails with
// PostgresConnectionLost and the next one replays from the checkpoint on a new connection.
// The checkpoint row is the one PostgresCheckpointStore reads (same table).

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/models/sql_value.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/postgres_checkpoint_rows.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class PostgresProjection {
  public:
    /// Connects, and creates the schema's krmx tables on first use (see PostgresOptions).
    explicit PostgresProjection(PostgresOptions database = {}) : database_(std::move(database)) { connect(); }
    PostgresProjection(const PostgresProjection&) = delete;
    PostgresProjection& operator=(const PostgresProjection&) = delete;
    ~PostgresProjection() {
        try {
            abort_batch();
        } catch (...) {
            // Nowhere left to count it: the projection is going away, and closing its connection rolls back.
        }
    }

    /// Runs one SQL statement with `$1, $2, ...` parameters (in the open batch, if any). Statements are
    /// prepared once and cached by their text.
    void execute(std::string_view sql, std::initializer_list<SqlValue> parameters = {}) {
        std::lock_guard lock{mutex_};
        (void)run(sql, parameters);
    }

    /// Runs a query and returns every row: integers and booleans as int64, floating point as double,
    /// NULL as nullptr, everything else as text.
    [[nodiscard]] std::vector<SqlRow> query(std::string_view sql,
                                            std::initializer_list<SqlValue> parameters = {}) {
        std::lock_guard lock{mutex_};
        const auto result = run(sql, parameters);
        std::vector<SqlRow> rows;
        for (int r = 0; r < result.rows(); ++r) {
            SqlRow row;
            for (int c = 0; c < result.columns(); ++c) row.push_back(column(result, r, c));
            rows.push_back(std::move(row));
        }
        return rows;
    }

    // ---- checkpoint storage (the CheckpointStore concept), plus the batch hooks the runner calls ----

    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        std::lock_guard lock{mutex_};
        reconnect_if_idle();
        return detail::load_checkpoint_row(*connection_, database_.schema, key);
    }

    /// Writes the checkpoint row and commits it together with the rows of the open batch.
    void save(std::string_view key, const Checkpoint& checkpoint) {
        std::lock_guard lock{mutex_};
        reconnect_if_idle();
        detail::save_checkpoint_row(*connection_, database_.schema, key, checkpoint);
        if (in_batch()) {
            const auto committed = connection_->exec("COMMIT");
            if (committed.command_status() != "COMMIT") {
                throw StoreError("PostgreSQL rolled back the projection's batch and checkpoint '" +
                                 std::string{key} + "'");
            }
        }
        ++commits_;
    }

    bool erase(std::string_view key) {
        std::lock_guard lock{mutex_};
        reconnect_if_idle();
        return detail::erase_checkpoint_row(*connection_, database_.schema, key);
    }

    /// Opens a transaction unless one is open (the runner calls it before each event).
    void begin_batch() {
        std::lock_guard lock{mutex_};
        reconnect_if_idle();
        if (!in_batch()) connection_->exec("BEGIN");
    }
    /// Rolls back the rows written since the last checkpoint (the runner calls it when a run fails).
    void abort_batch() {
        std::lock_guard lock{mutex_};
        if (in_batch()) connection_->rollback();
    }

    /// Transactions committed with a checkpoint.
    [[nodiscard]] std::uint64_t commits() const noexcept { return commits_; }
    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    void connect() const {
        connection_ = detail::open_krmx_schema(database_);
        connection_->exec("SET search_path = " + detail::quoted_identifier(database_.schema) + ", public");
    }

    // Outside a batch nothing is lost with the connection: open a new one.
    void reconnect_if_idle() const {
        if (connection_->broken()) connect();
    }

    [[nodiscard]] bool in_batch() const noexcept {
        const auto status = PQtransactionStatus(connection_->handle());
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
    }

    detail::PgResult run(std::string_view sql, std::initializer_list<SqlValue> parameters) {
        if (!in_batch()) reconnect_if_idle();
        std::vector<std::string> texts;
        texts.reserve(parameters.size());
        std::vector<detail::PgParam> bound;
        bound.reserve(parameters.size());
        for (const auto& value : parameters) {
            if (std::holds_alternative<std::nullptr_t>(value)) {
                bound.emplace_back(std::nullopt);
                continue;
            }
            if (const auto* i = std::get_if<std::int64_t>(&value)) {
                texts.push_back(std::to_string(*i));
            } else if (const auto* d = std::get_if<double>(&value)) {
                char buffer[32];
                const auto end =
                    std::to_chars(buffer, buffer + sizeof buffer, *d).ptr;  // shortest exact form
                texts.emplace_back(buffer, end);
            } else {
                const auto& text = std::get<std::string>(value);
                if (text.find('\0') != std::string::npos) {
                    throw StoreError(
                        "a text parameter contains a NUL character, which PostgreSQL cannot store");
                }
                texts.push_back(text);
            }
            bound.emplace_back(texts.back());
        }
        return connection_->exec(std::string{sql}, bound);
    }

    static SqlValue column(const detail::PgResult& result, int r, int c) {
        if (result.is_null(r, c)) return SqlValue{nullptr};
        const std::string_view text = result.text(r, c);
        switch (result.type(c)) {
            case 16:  // bool
                return SqlValue{std::int64_t{text == "t" ? 1 : 0}};
            case 20:  // int8
            case 21:  // int2
            case 23:  // int4
                return SqlValue{result.int64(r, c)};
            case 700:    // float4
            case 701: {  // float8
                double value = 0;
                std::from_chars(text.data(), text.data() + text.size(), value);
                return SqlValue{value};
            }
            default:
                return SqlValue{std::string{text}};
        }
    }

    PostgresOptions database_;
    mutable std::mutex mutex_;
    mutable std::unique_ptr<detail::PgConnection> connection_;
    std::uint64_t commits_ = 0;
};

static_assert(CheckpointStore<PostgresProjection>);

}  // namespace krmx
