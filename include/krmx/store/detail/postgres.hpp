#pragma once
// PostgreSQL plumbing shared by the PostgreSQL stores (libpq's C API): RAII connections and results, error
// translation, text-array parameters, and the krmx schema (created on first use, versioned, foreign schemas
// refused). Link the `krmx::postgres` CMake target. The public options and errors are in
// postgres_options.hpp.

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/postgres_options.hpp"

namespace krmx::detail {

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
            detail::quoted(schema) +
            " is not a usable krmx schema name: use lower-case letters, digits and '_', starting "
            "with a letter or '_', at most 48 characters");
    }
    return schema;
}

/// An unsigned number in PostgreSQL's binary form (big-endian) from `bytes` (at most eight).
inline std::uint64_t big_endian(std::string_view bytes) noexcept {
    std::uint64_t bits = 0;
    for (const char byte : bytes) bits = bits << 8 | static_cast<unsigned char>(byte);
    return bits;
}

/// A count or a position as a bigint: values past its range (read_unbounded) become its largest.
[[nodiscard]] inline std::int64_t pg_bigint(std::uint64_t value) noexcept {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(value, std::numeric_limits<std::int64_t>::max()));
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
        if (PQfformat(result_, column) == 1) {  // binary: eight bytes, big-endian (bigint columns only)
            if (value.size() != 8)
                throw CorruptRecord("PostgreSQL returned a binary number of the wrong size");
            return static_cast<std::int64_t>(big_endian(value));
        }
        std::int64_t result = 0;
        const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), result);
        if (error != std::errc{} || end != value.data() + value.size()) {
            throw CorruptRecord("PostgreSQL returned " + detail::quoted(value) + " where a number belongs");
        }
        return result;
    }
    [[nodiscard]] std::string_view command_status() const noexcept {
        return result_ == nullptr ? std::string_view{} : std::string_view{PQcmdStatus(result_)};
    }

  private:
    PGresult* result_ = nullptr;
};

/// One tuple of a binary COPY (`COPY ... TO STDOUT (FORMAT binary)`): its fields as views into the CopyData
/// message that held it. PostgreSQL sends the file header with the first tuple, one tuple per message, and a
/// trailer (a field count of -1) at the end. Every length is checked against the message, so a message
/// that is not exactly that is CorruptRecord, never read past its end.
class CopyTuple {
  public:
    static constexpr std::size_t max_fields = 16;

    /// Reads the next message of the COPY; false for its trailer.
    bool read(std::string_view message) {
        if (!header_read_) {
            constexpr std::string_view signature{"PGCOPY\n\377\r\n\0", 11};
            if (!message.starts_with(signature)) corrupt("does not start with the binary COPY signature");
            message.remove_prefix(signature.size());
            const std::uint32_t flags = take32(message);
            if ((flags & 0xFFFF0000u) != 0) corrupt("has header flags this reader does not know");
            const std::uint32_t extension = take32(message);
            if (extension > message.size()) corrupt("has a header extension longer than its message");
            message.remove_prefix(extension);
            header_read_ = true;
        }
        if (message.size() < 2) corrupt("ends inside a field count");
        const auto count =
            static_cast<std::int16_t>(static_cast<std::uint16_t>(big_endian(message.substr(0, 2))));
        message.remove_prefix(2);
        if (count == -1) {
            if (!message.empty()) corrupt("has bytes after its trailer");
            return false;
        }
        if (count < 0 || static_cast<std::size_t>(count) > max_fields) corrupt("has a bad field count");
        count_ = static_cast<std::size_t>(count);
        for (std::size_t i = 0; i < count_; ++i) {
            const auto length = static_cast<std::int32_t>(take32(message));
            if (length == -1) {
                fields_[i].reset();
                continue;
            }
            if (length < 0 || static_cast<std::size_t>(length) > message.size())
                corrupt("has a field longer than its message");
            fields_[i] = message.substr(0, static_cast<std::size_t>(length));
            message.remove_prefix(static_cast<std::size_t>(length));
        }
        if (!message.empty()) corrupt("has bytes after its last field");
        return true;
    }

    [[nodiscard]] std::size_t fields() const noexcept { return count_; }
    [[nodiscard]] std::optional<std::string_view> optional_text(std::size_t i) const { return field(i); }
    [[nodiscard]] std::string_view text(std::size_t i) const {
        const auto value = field(i);
        if (!value) corrupt("has NULL in a column that is never NULL");
        return *value;
    }
    /// A bigint: eight bytes, big-endian.
    [[nodiscard]] std::int64_t int64(std::size_t i) const {
        const auto value = text(i);
        if (value.size() != 8) corrupt("has a bigint that is not eight bytes");
        return static_cast<std::int64_t>(big_endian(value));
    }

  private:
    [[noreturn]] static void corrupt(const char* what) {
        throw CorruptRecord(std::string{"a row that PostgreSQL sent "} + what);
    }
    static std::uint32_t take32(std::string_view& message) {
        if (message.size() < 4) corrupt("ends inside a length");
        const auto value = static_cast<std::uint32_t>(big_endian(message.substr(0, 4)));
        message.remove_prefix(4);
        return value;
    }
    [[nodiscard]] std::optional<std::string_view> field(std::size_t i) const {
        if (i >= count_) corrupt("has fewer columns than asked for");
        return fields_[i];
    }

    bool header_read_ = false;
    std::size_t count_ = 0;
    std::array<std::optional<std::string_view>, max_fields> fields_{};
};

/// One row of a PgResult, read like a CopyTuple.
struct PgResultRow {
    const PgResult& result;
    int row;
    [[nodiscard]] std::int64_t int64(int column) const { return result.int64(row, column); }
    [[nodiscard]] std::string_view text(int column) const noexcept { return result.text(row, column); }
    [[nodiscard]] std::optional<std::string_view> optional_text(int column) const noexcept {
        return result.optional_text(row, column);
    }
};

/// A text parameter; empty means SQL NULL.
using PgParam = std::optional<std::string_view>;

/// How a statement's result columns come back (libpq's resultFormat).
enum class Results { text = 0, binary = 1 };

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
    PgResult exec(const std::string& sql) {
        discard_sent();
        return check(PQexec(connection_, sql.c_str()), sql);
    }

    /// Runs one statement with text parameters, prepared once per connection. With `Results::binary`,
    /// text columns come as they are and bigint columns as eight bytes (PgResult::int64 reads both): the
    /// server skips formatting numbers as text, the client parsing them.
    PgResult exec(const std::string& sql, std::span<const PgParam> params, Results results = Results::text) {
        discard_sent();
        const std::string& name = prepared(sql);
        Values values{params};
        return check(PQexecPrepared(connection_, name.c_str(), values.count(), values.pointers(), nullptr,
                                    nullptr, static_cast<int>(results)),
                     sql);
    }
    PgResult exec(const std::string& sql, std::initializer_list<PgParam> params) {
        return exec(sql, std::span<const PgParam>{params.begin(), params.size()});
    }

    /// Sends a statement without waiting for its result: a read-ahead, so that the server produces the
    /// next rows while the caller decodes the last ones. take_sent() collects it; any other use of the
    /// connection discards it first. A statement that cannot be sent is simply not sent.
    void send(const std::string& sql, std::span<const PgParam> params, Results results = Results::text) {
        discard_sent();
        const std::string& name = prepared(sql);
        Values values{params};
        if (PQsendQueryPrepared(connection_, name.c_str(), values.count(), values.pointers(), nullptr,
                                nullptr, static_cast<int>(results)) == 0) {
            return;
        }
        sent_ = Sent{sql, std::move(values.texts)};
    }

    /// The result of the statement send() sent, when it was exactly `sql` with `params`; otherwise that
    /// statement's result is discarded and nothing is returned.
    [[nodiscard]] std::optional<PgResult> take_sent(const std::string& sql, std::span<const PgParam> params) {
        if (!sent_) return std::nullopt;
        bool same = sent_->sql == sql && sent_->values.size() == params.size();
        for (std::size_t i = 0; same && i < params.size(); ++i) same = sent_->values[i] == params[i];
        if (!same) {
            discard_sent();
            return std::nullopt;
        }
        sent_.reset();
        PGresult* raw = PQgetResult(connection_);
        drain();
        return check(raw, sql);
    }

    /// Moves whatever the server has sent so far off the socket, so that a server producing a sent
    /// statement's rows is not held up by a full socket buffer while the caller works.
    void pull() noexcept {
        if (sent_) (void)PQconsumeInput(connection_);
    }

    /// Runs `COPY (query) TO STDOUT (FORMAT binary)` (`sql`) and hands each of its CopyData messages to
    /// `message(std::string_view)` as it arrives: rows stream off the socket one at a time, nothing is
    /// collected, and PostgreSQL produces the next rows meanwhile. A COPY cannot be prepared: values go into
    /// `sql` as literals (see literal()). If `message` throws, or the COPY fails half-way, the connection
    /// is closed (it is in the middle of a COPY and cannot be reused) and the exception goes on.
    template <class F>
    void copy_out(const std::string& sql, F&& message) {
        discard_sent();
        if (PQsendQuery(connection_, sql.c_str()) == 0) (void)check(nullptr, sql);
        {
            PGresult* started = PQgetResult(connection_);
            if (started == nullptr || PQresultStatus(started) != PGRES_COPY_OUT) {
                drain();
                (void)check(started, sql);
                throw StoreError("PostgreSQL did not start a COPY for " + sql.substr(0, 120));
            }
            PQclear(started);
        }
        try {
            for (;;) {
                char* data = nullptr;
                const int size = PQgetCopyData(connection_, &data, 0);
                if (size == -1) break;
                if (size < 0 || data == nullptr) (void)check(nullptr, sql);  // throws: the COPY failed
                const std::unique_ptr<char, decltype(&PQfreemem)> owned{data, &PQfreemem};
                message(std::string_view{data, static_cast<std::size_t>(size)});
            }
            PGresult* finished = PQgetResult(connection_);
            drain();
            (void)check(finished, sql);
        } catch (...) {
            close();
            throw;
        }
    }

    /// `text` as a quoted SQL literal (for statements that cannot take parameters, such as a COPY).
    [[nodiscard]] std::string literal(std::string_view text) const {
        char* quoted = PQescapeLiteral(connection_, text.data(), text.size());
        if (quoted == nullptr) throw StoreError("cannot quote a literal for PostgreSQL: " + error_message());
        const std::unique_ptr<char, decltype(&PQfreemem)> owned{quoted, &PQfreemem};
        return std::string{quoted};
    }

    /// Rolls back whatever transaction is open; never throws (the connection may be gone).
    void rollback() noexcept {
        discard_sent();
        if (connection_ != nullptr && !broken()) {
            PGresult* result = PQexec(connection_, "ROLLBACK");
            if (result != nullptr) PQclear(result);
        }
    }

  private:
    // libpq wants NUL-terminated values: the views are copied (cheap next to a round trip).
    struct Values {
        explicit Values(std::span<const PgParam> params) {
            texts.reserve(params.size());
            for (const auto& param : params) texts.emplace_back(param);
            raw.reserve(texts.size());
            for (const auto& text : texts) raw.push_back(text ? text->c_str() : nullptr);
        }
        [[nodiscard]] int count() const noexcept { return static_cast<int>(raw.size()); }
        [[nodiscard]] const char* const* pointers() const noexcept { return raw.data(); }
        std::vector<std::optional<std::string>> texts;
        std::vector<const char*> raw;
    };

    struct Sent {
        std::string sql;
        std::vector<std::optional<std::string>> values;
    };

    const std::string& prepared(const std::string& sql) {
        auto found = prepared_.find(sql);
        if (found == prepared_.end()) {
            const std::string name = "krmx_" + std::to_string(prepared_.size());
            (void)check(PQprepare(connection_, name.c_str(), sql.c_str(), 0, nullptr), sql);
            found = prepared_.emplace(sql, name).first;
        }
        return found->second;
    }

    // Reads and drops results until the connection is ready for the next statement.
    void drain() noexcept {
        while (PGresult* result = PQgetResult(connection_)) PQclear(result);
    }

    // Closes the connection for good: broken() from now on, so the pool drops it.
    void close() noexcept {
        sent_.reset();
        if (connection_ != nullptr) PQfinish(std::exchange(connection_, nullptr));
    }

    [[nodiscard]] std::string error_message() const {
        std::string message =
            connection_ != nullptr ? PQerrorMessage(connection_) : "the connection is closed";
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
        return message;
    }

    void discard_sent() noexcept {
        if (!sent_) return;
        sent_.reset();
        drain();
    }

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
    std::optional<Sent> sent_;
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

/// A schema name quoted for SQL text (it passed `checked_schema`). Not `quoted`: that one quotes names for
/// error messages.
inline std::string quoted_identifier(const std::string& schema) {
    return "\"" + schema + "\"";
}

/// The head of a schema's event log: its largest position, below which nothing is missing, as appends
/// number their events under the schema's advisory lock (see PostgresEventStore).
inline std::string krmx_head_sql(const std::string& schema) {
    return "SELECT coalesce(max(position), 0) FROM " + quoted_identifier(schema) + ".krmx_events";
}

/// The channel on which every append to a schema notifies its new head when it commits.
inline std::string krmx_channel(const std::string& schema) {
    return "krmx_" + schema;
}

/// Tables of schema version 1, in the schema `S`. Event store, checkpoints, locks and projections share it.
inline std::string krmx_postgres_schema_v1(const std::string& schema) {
    const std::string s = quoted_identifier(schema);
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

/// The event store's append in one round trip (PostgresEventStore::append): under the schema's advisory
/// lock, reads the head and the stream, checks the expected revision, and inserts the events and the
/// stream's new revision; the statement's own transaction commits it, and the lock is held until then.
/// `kind` is ExpectedRevision::Kind as a number. Outcome 0: appended after `head`; 1: one of the ids is
/// stored already (the caller sorts out whether that is a repeat, step by step); 2: the expected revision
/// does not match `actual` (NULL: no stream). Replaced on every open, so every process runs the same one.
inline std::string krmx_append_function(const std::string& schema) {
    const std::string s = quoted_identifier(schema);
    return "CREATE OR REPLACE FUNCTION " + s +
           ".krmx_append(p_stream text, p_kind int, p_expected bigint, p_ids text[], p_types text[], "
           "p_payloads text[], p_dispatchers text[], p_timestamps bigint[], p_metadata text[], p_check_ids "
           "boolean, p_channel text) RETURNS TABLE (outcome int, head bigint, actual bigint) LANGUAGE "
           "plpgsql "
           "AS $krmx$\n"
           "DECLARE v_head bigint; v_id bigint; v_revision bigint; v_first bigint; v_count bigint;\n"
           "BEGIN\n"
           "  PERFORM pg_advisory_xact_lock(" +
           std::to_string(krmx_advisory_class) + ", hashtext('" + schema +
           "'));\n"
           "  SELECT coalesce(max(e.position), 0) INTO v_head FROM " +
           s +
           ".krmx_events e;\n"
           "  SELECT st.id, st.revision INTO v_id, v_revision FROM " +
           s +
           ".krmx_streams st WHERE st.name = p_stream;\n"
           "  IF p_check_ids AND EXISTS (SELECT 1 FROM " +
           s +
           ".krmx_events e WHERE e.event_id = ANY(p_ids)) THEN\n"
           "    RETURN QUERY SELECT 1, v_head, v_revision; RETURN;\n"
           "  END IF;\n"
           "  IF (p_kind = 1 AND v_id IS NOT NULL) OR (p_kind = 2 AND v_id IS NULL) OR\n"
           "     (p_kind = 3 AND (v_id IS NULL OR v_revision <> p_expected)) THEN\n"
           "    RETURN QUERY SELECT 2, v_head, v_revision; RETURN;\n"
           "  END IF;\n"
           "  v_first := coalesce(v_revision + 1, 0);\n"
           "  v_count := cardinality(p_ids);\n"
           "  IF v_id IS NULL THEN\n"
           "    INSERT INTO " +
           s +
           ".krmx_streams (name, revision) VALUES (p_stream, v_first + v_count - 1) RETURNING id INTO v_id;\n"
           "  ELSE\n"
           "    UPDATE " +
           s +
           ".krmx_streams SET revision = v_first + v_count - 1 WHERE id = v_id;\n"
           "  END IF;\n"
           "  INSERT INTO " +
           s +
           ".krmx_events (position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, "
           "metadata)\n"
           "    SELECT v_head + u.i, v_id, v_first + u.i - 1, u.event_id, u.type, u.payload, u.dispatcher, "
           "u.ts, u.metadata\n"
           "    FROM unnest(p_ids, p_types, p_payloads, p_dispatchers, p_timestamps, p_metadata) WITH "
           "ORDINALITY AS u(event_id, type, payload, dispatcher, ts, metadata, i);\n"
           "  PERFORM pg_notify(p_channel, (v_head + v_count)::text);\n"
           "  RETURN QUERY SELECT 0, v_head, v_revision;\n"
           "END\n"
           "$krmx$";
}

/// Opens a connection and makes sure `schema` holds krmx's tables: creates them when the schema is new or
/// empty, and refuses (untouched) a schema of another application or a newer krmx schema. Several
/// processes may do this at once: an advisory lock makes one of them create and the others wait.
inline std::unique_ptr<PgConnection> open_krmx_schema(const PostgresOptions& options) {
    const std::string& schema = checked_schema(options.schema);
    auto connection = std::make_unique<PgConnection>(postgres_conninfo(options));
    const std::string s = quoted_identifier(schema);
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
        const std::string where = "the PostgreSQL schema " + detail::quoted(schema);
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
        connection->exec(krmx_append_function(schema));
        connection->exec("COMMIT");
    } catch (...) {
        connection->rollback();
        throw;
    }
    return connection;
}

}  // namespace krmx::detail
