#pragma once
// Checkpoints in a PostgreSQL schema (the table `krmx_checkpoints`, next to the events of a
// PostgresEventStore on the same schema, or in a schema of their own). Link `krmx::postgres`.
// One connection; a lost connection is reopened and the operation retried once.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/postgres_checkpoint_rows.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class PostgresCheckpointStore {
  public:
    /// Connects, and creates the schema's tables on first use (see PostgresOptions).
    explicit PostgresCheckpointStore(PostgresOptions database = {})
        : database_(std::move(database)), connection_(detail::open_krmx_schema(database_)) {}

    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        return with_connection(
            [&](detail::PgConnection& c) { return detail::load_checkpoint_row(c, database_.schema, key); });
    }

    void save(std::string_view key, const Checkpoint& checkpoint) {
        with_connection([&](detail::PgConnection& c) {
            detail::save_checkpoint_row(c, database_.schema, key, checkpoint);
            return true;
        });
    }

    bool erase(std::string_view key) {
        return with_connection(
            [&](detail::PgConnection& c) { return detail::erase_checkpoint_row(c, database_.schema, key); });
    }

    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    template <class Work>
    auto with_connection(Work work) const -> std::invoke_result_t<Work&, detail::PgConnection&> {
        std::lock_guard lock{mutex_};  // one connection, one thread at a time
        try {
            if (connection_->broken()) throw PostgresConnectionLost("the connection was lost");
            return work(*connection_);
        } catch (const PostgresConnectionLost&) {
            // Every operation here is one statement: repeating it on a new connection is safe.
            connection_ = std::make_unique<detail::PgConnection>(detail::postgres_conninfo(database_));
            return work(*connection_);
        }
    }

    PostgresOptions database_;
    mutable std::mutex mutex_;
    mutable std::unique_ptr<detail::PgConnection> connection_;
};

static_assert(CheckpointStore<PostgresCheckpointStore>);

}  // namespace krmx
