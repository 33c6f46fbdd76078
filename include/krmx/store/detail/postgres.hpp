#pragma once
// PostgreSQL plumbing shared by the PostgreSQL stores (libpq's C API): RAII connections and results, error
// translation, text-array parameters, and the krmx schema (created on first use, versioned, foreign schemas
// refused). Link the `krmx::postgres` CMake target.

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

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

namespace detail {

/// The schema this header writes and reads. A newer schema is refused rather than misread.
inline constexpr int krmx_postgres_schema_version = 1;
/// First key of krmx's two-key advisory locks ("krmx" in ASCII); the second is the schema's hash.
inline constexpr std::int32_t krmx_advisory_class = 0x6B726D78;

inline std::string postgres_conninfo(const PostgresOptions& options) {
    if (!options.connection.empty()) return options.connection;
    if (const char* url = std::getenv("KRMX_POSTGRES_URL"); url != nullptr) return url;
    return {};
}

/// Throws InvalidArgument-like StoreError unless `schema` is a plain identifier (it is put into SQL text).
inline const std::string& checked_schema(const std::string& schema) {
    const bool ok = !schema.empty() && schema.size() <= 48 &&
                    (schema[0] == '_' || (schema[0] >= 'a' && schema[0] <= 'z')) &&
                    schema.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
    if (!ok) {
        throw StoreError(
            "'" + schema +
            "' is not a usable krmx schema name: use lower-case letters, digits and '_', starting "
            "with a letter or '_', at most 48 characters");
    }
    return schema;
}

/// A query result; the values are views into it.
class PgResult {
  public:
    PgResult() = default;
    explicit PgResult(PGresult* result) noexcept : result_(result) {}
    PgResult(PgResult&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
    PgResult& operator=(PgResult&& other) noexcept {
        if (this != &other) {
            if (result_ != nullptr) PQclear(result_);
            result_ = std::exchange(other.result_, nullptr);
        }
        return *this;
    }
    PgResult(const PgResult&) = delete;
    PgResult& operator=(const PgResult&) = delete;
    ~PgResult() {
        if (result_ != nullptr) PQclear(result_);
    }

    [[nodiscard]] int rows() const noexcept { return result_ == nullptr ? 0 : PQntuples(result_); }
    [[nodiscard]] int columns() const noexcept { return result_ == nullptr ? 0 : PQnfields(result_); }
    /// The type OID of a column (see pg_type).
    [[nodiscard]] unsigned type(int column) const noexcept { return PQftype(result_, column); }
    [[nodiscard]] bool is_null(int row, int column) const noexcept {
        return PQgetisnull(result_, row, column) != 0;
    }
    [[nodiscard]] std::string_view text(int row, int column) const noexcept {
        return {PQgetvalue(result_, row, column),
                static_cast<std::size_t>(PQgetlength(result_, row, column))};
    }
    [[nodiscard]] std::optional<std::string_view> optional_text(int row, int column) const noexcept {
        if (is_null(row, column)) return std::nullopt;
        return text(row, column);
    }
    [[nodiscard]] std::int64_t int64(int row, int column) const {
        const auto value = text(row, column);
        std::int64_t result = 0;
        const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), result);
        if (error != std::errc{} || end != value.data() + value.size()) {
            throw CorruptRecord("PostgreSQL returned '" + std::string{value} + "' where a number belongs");
        }
        return result;
    }
    [[nodiscard]] std::string_view command_status() const noexcept {
        return result_ == nullptr ? std::string_view{} : std::string_view{PQcmdStatus(result_)};
    }

  private:
    PGresult* result_ = nullptr;
};

/// A text parameter; empty means SQL NULL.
using PgParam = std::optional<std::string_view>;

/// One connection, used by one thread at a time, with its prepared statements cached by SQL text.
class PgConnection {
  public:
    explicit PgConnection(const std::string& conninfo) {
        connection_ = PQconnectdb(conninfo.c_str());
        if (connection_ == nullptr) throw StoreError("cannot connect to PostgreSQL: out of memory");
        if (PQstatus(connection_) != CONNECTION_OK) {
            std::string message = PQerrorMessage(connection_);
            PQfinish(connection_);
            connection_ = nullptr;
            while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
            throw PostgresConnectionLost("cannot connect to PostgreSQL: " + message);
        }
        // Notices (e.g. "schema already exists, skipping") are not errors; keep them off stderr.
        PQsetNoticeProcessor(
            connection_, [](void*, const char*) {}, nullptr);
        try {
            exec("SET client_encoding = 'UTF8'");
        } catch (...) {
            // The destructor does not run for a constructor that throws.
            PQfinish(std::exchange(connection_, nullptr));
            throw;
        }
    }
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;
    ~PgConnection() {
        if (connection_ != nullptr) PQfinish(connection_);
    }

    [[nodiscard]] PGconn* handle() const noexcept { return connection_; }
    /// Whether the connection is gone for good (it is then dropped rather than reused).
    [[nodiscard]] bool broken() const noexcept { return PQstatus(connection_) != CONNECTION_OK; }

    /// Runs one or more statements without parameters; the result of the last one.
    PgResult exec(const std::string& sql) { return check(PQexec(connection_, sql.c_str()), sql); }

    /// Runs one statement with text parameters, prepared once per connection.
    PgResult exec(const std::string& sql, std::span<const PgParam> params) {
        auto found = prepared_.find(sql);
        if (found == prepared_.end()) {
            const std::string name = "krmx_" + std::to_string(prepared_.size());
            (void)check(PQprepare(connection_, name.c_str(), sql.c_str(), 0, nullptr), sql);
            found = prepared_.emplace(sql, name).first;
        }
        // libpq wants NUL-terminated values: copy the views (cheap next to a round trip).
        std::vector<std::string> values;
        values.reserve(params.size());
        std::vector<const char*> pointers;
        pointers.reserve(params.size());
        for (const auto& param : params) {
            if (param) {
                values.emplace_back(*param);
                pointers.push_back(values.back().c_str());
            } else {
                pointers.push_back(nullptr);
            }
        }
        return check(PQexecPrepared(connection_, found->second.c_str(), static_cast<int>(params.size()),
                                    pointers.data(), nullptr, nullptr, 0),
                     sql);
    }
    PgResult exec(const std::string& sql, std::initializer_list<PgParam> params) {
        return exec(sql, std::span<const PgParam>{params.begin(), params.size()});
    }

    /// Rolls back whatever transaction is open; never throws (the connection may be gone).
    void rollback() noexcept {
        if (connection_ != nullptr && !broken()) {
            PGresult* result = PQexec(connection_, "ROLLBACK");
            if (result != nullptr) PQclear(result);
        }
    }

  private:
    PgResult check(PGresult* raw, const std::string& sql) {
        PgResult result{raw};
        const auto status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
        std::string message = raw != nullptr ? PQresultErrorMessage(raw) : PQerrorMessage(connection_);
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
        const char* state = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
        const std::string sqlstate = state != nullptr ? state : "";
        const std::string where = sql.size() > 120 ? sql.substr(0, 120) + "..." : sql;
        // Class 08 is a connection exception; 57P01..57P03: the server shut down or is shutting down.
        if (broken() || sqlstate.starts_with("08") || sqlstate.starts_with("57P")) {
            throw PostgresConnectionLost("the PostgreSQL connection was lost while running " + where + ": " +
                                         message);
        }
        if (sqlstate.starts_with("XX001") || sqlstate.starts_with("XX002")) {
            throw CorruptRecord("PostgreSQL reports damaged data while running " + where + ": " + message);
        }
        throw StoreError("PostgreSQL error while running " + where + ": " + message +
                         (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"));
    }

    PGconn* connection_ = nullptr;
    std::unordered_map<std::string, std::string> prepared_;
};

/// Appends `value` to a PostgreSQL array literal as one quoted element (NULL when empty).
inline void add_array_element(std::string& literal, std::optional<std::string_view> value) {
    literal += literal.size() == 1 ? "" : ",";
    if (!value) {
        literal += "NULL";
        return;
    }
    literal += '"';
    for (const char c : *value) {
        if (c == '"' || c == '\\') literal += '\\';
        literal += c;
    }
    literal += '"';
}

/// A PostgreSQL array literal of text values (`{"a","b",NULL}`).
class PgArray {
  public:
    PgArray() { literal_ = "{"; }
    PgArray& add(std::optional<std::string_view> value) {
        add_array_element(literal_, value);
        return *this;
    }
    PgArray& add(std::int64_t value) {
        literal_ += literal_.size() == 1 ? "" : ",";
        literal_ += std::to_string(value);
        return *this;
    }
    [[nodiscard]] std::string done() && {
        literal_ += '}';
        return std::move(literal_);
    }

  private:
    std::string literal_;
};

/// A schema name quoted for SQL text (it passed `checked_schema`).
inline std::string quoted(const std::string& schema) {
    return "\"" + schema + "\"";
}

/// Tables of schema version 1, in the schema `S`. Event store, checkpoints, locks and projections share it.
inline std::string krmx_postgres_schema_v1(const std::string& schema) {
    const std::string s = quoted(schema);
    return "CREATE SCHEMA IF NOT EXISTS " + s + ";\n" + "CREATE TABLE " + s +
           ".krmx_meta (key text PRIMARY KEY, value text NOT NULL);\n" + "CREATE TABLE " + s +
           ".krmx_streams (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE, "
           "revision bigint NOT NULL);\n" +
           "CREATE TABLE " + s +
           ".krmx_events (position bigint PRIMARY KEY, stream_id bigint NOT NULL, revision bigint NOT NULL, "
           "event_id text NOT NULL, type text NOT NULL, payload text, dispatcher text NOT NULL, "
           "timestamp bigint NOT NULL, metadata text);\n" +
           "CREATE UNIQUE INDEX krmx_events_by_stream ON " + s + ".krmx_events (stream_id, revision);\n" +
           "CREATE UNIQUE INDEX krmx_events_by_id ON " + s + ".krmx_events (event_id);\n" + "CREATE TABLE " +
           s +
           ".krmx_checkpoints (key text PRIMARY KEY, state text NOT NULL, position bigint NOT NULL, "
           "version text NOT NULL, saved_at bigint NOT NULL);\n" +
           "CREATE TABLE " + s +
           ".krmx_locks (name text PRIMARY KEY, id bigint GENERATED ALWAYS AS IDENTITY UNIQUE);\n" +
           "INSERT INTO " + s + ".krmx_meta (key, value) VALUES ('format', 'krmx'), ('schema_version', '" +
           std::to_string(krmx_postgres_schema_version) + "');\n";
}

/// Opens a connection and makes sure `schema` holds krmx's tables: creates them when the schema is new or
/// empty, and refuses (untouched) a schema of another application or a newer krmx schema. Several
/// processes may do this at once: an advisory lock makes one of them create and the others wait.
inline std::unique_ptr<PgConnection> open_krmx_schema(const PostgresOptions& options) {
    const std::string& schema = checked_schema(options.schema);
    auto connection = std::make_unique<PgConnection>(postgres_conninfo(options));
    const std::string s = quoted(schema);
    const std::string literal = "'" + schema + "'";
    connection->exec("BEGIN");
    try {
        connection->exec("SELECT pg_advisory_xact_lock(" + std::to_string(krmx_advisory_class) +
                         ", hashtext(" + literal + "))");
        const PgResult found =
            connection->exec("SELECT to_regclass(" + std::string{"'"} + s +
                             ".krmx_meta') IS NOT NULL, (SELECT count(*) FROM "
                             "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " +
                             literal + ")");
        const bool has_meta = found.text(0, 0) == "t";
        const std::int64_t objects = found.int64(0, 1);
        const std::string where = "the PostgreSQL schema '" + schema + "'";
        if (has_meta) {
            const PgResult meta = connection->exec("SELECT (SELECT value FROM " + s +
                                                   ".krmx_meta WHERE key = 'format'), (SELECT "
                                                   "value FROM " +
                                                   s + ".krmx_meta WHERE key = 'schema_version')");
            if (meta.is_null(0, 0) || meta.text(0, 0) != "krmx" || meta.is_null(0, 1)) {
                throw IncompatibleStoreFile(where +
                                            " is not a krmx store: its krmx_meta table belongs to "
                                            "something else");
            }
            std::int64_t version = 0;
            try {
                version = meta.int64(0, 1);
            } catch (const StoreError&) {
                throw IncompatibleStoreFile(where + " has an unreadable krmx schema version");
            }
            if (version > krmx_postgres_schema_version) {
                throw IncompatibleStoreFile(
                    where + " has krmx schema version " + std::to_string(version) + ", newer than version " +
                    std::to_string(krmx_postgres_schema_version) + " that this krmx supports");
            }
            if (version < 1) throw IncompatibleStoreFile(where + " has no valid krmx schema version");
        } else if (objects != 0) {
            throw IncompatibleStoreFile(where + " is not a krmx store: it holds " + std::to_string(objects) +
                                        " tables or other objects of another application");
        } else {
            connection->exec(krmx_postgres_schema_v1(schema));
        }
        connection->exec("COMMIT");
    } catch (...) {
        connection->rollback();
        throw;
    }
    return connection;
}

}  // namespace detail
}  // namespace krmx
