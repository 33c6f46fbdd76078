#pragma once
// The public options and errors of krmx's PostgreSQL parts (event store, checkpoint store, projection, lock
// provider): where to connect, which schema, how durable, and what a lost connection throws. Link the
// `krmx::postgres` CMake target for the parts themselves; this header alone needs no libpq.

#include <chrono>
#include <string>

#include "krmx/store/event_store.hpp"

namespace krmx {

/// The connection to PostgreSQL broke (server restart, `pg_terminate_backend`, network). For an append it
/// means the outcome is unknown; repeating it with the same event ids is safe (it stores nothing twice).
class PostgresConnectionLost : public StoreError {
  public:
    using StoreError::StoreError;
};

/// Where to connect and which schema to use; shared by every PostgreSQL part.
struct PostgresOptions {
    /// A libpq connection string or URL. Empty: the environment variable `KRMX_POSTGRES_URL`, and failing
    /// that libpq's own defaults (PGHOST, PGDATABASE, ... and the local socket).
    std::string connection{};
    /// The PostgreSQL schema holding krmx's tables, so that several games share one database: lower-case
    /// letters, digits and `_`, starting with a letter or `_`, at most 48 characters.
    std::string schema = "krmx";
};

enum class PostgresDurability {
    /// Each commit is flushed to disk before its append returns.
    synced,
    /// `synchronous_commit = off`: safe against a crash of the writer, not of the database server.
    group_commit,
};

struct PostgresEventStoreOptions {
    PostgresDurability durability = PostgresDurability::synced;
    /// How often subscriptions look for new events when no notification came (a lost one, or a writer that
    /// does not notify).
    std::chrono::milliseconds poll_interval{500};
    /// How long a lost connection is retried (with backoff) before an append, a read or a subscription
    /// gives up with PostgresConnectionLost.
    std::chrono::milliseconds reconnect_timeout{30'000};
};

}  // namespace krmx
