#pragma once
// SQLite plumbing shared by the SQLite stores: RAII connections and statements, error translation, the
// krmx file schema (created on open, versioned, foreign files refused) and the record checksum.

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// Marks a file as a krmx store in the SQLite header ("krmx" in ASCII), so that other files are refused.
inline constexpr std::int32_t krmx_application_id = 0x6B726D78;
/// The schema this header writes and reads. A newer file is refused rather than misread.
inline constexpr std::int32_t krmx_schema_version = 1;

/// Turns an SQLite result code into the matching store error.
[[noreturn]] inline void throw_sqlite(sqlite3* db, int code, std::string_view doing) {
    const std::string message = "SQLite error while " + std::string{doing} + ": " +
                                (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code)) + " (" +
                                std::to_string(code) + ")";
    switch (code & 0xFF) {
        case SQLITE_CORRUPT:
            throw CorruptRecord(message);
        case SQLITE_NOTADB:
            throw IncompatibleStoreFile(message);
        default:
            throw StoreError(message);
    }
}

/// A prepared statement. Bound text must stay alive until the statement is reset (`Reset` does it).
class SqliteStatement {
  public:
    SqliteStatement(sqlite3* db, std::string_view sql) : db_(db) {
        const int code = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                            SQLITE_PREPARE_PERSISTENT, &statement_, nullptr);
        if (code != SQLITE_OK) throw_sqlite(db, code, "preparing " + std::string{sql});
    }
    SqliteStatement(const SqliteStatement&) = delete;
    SqliteStatement& operator=(const SqliteStatement&) = delete;
    ~SqliteStatement() { sqlite3_finalize(statement_); }

    void bind(int index, std::int64_t value) {
        check(sqlite3_bind_int64(statement_, index, value), "binding");
    }
    void bind(int index, std::string_view text) {
        // SQLITE_STATIC: no copy; the caller keeps the text alive until reset.
        check(sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC),
              "binding");
    }
    void bind(int index, const std::optional<std::string>& text) {
        if (text) {
            bind(index, std::string_view{*text});
        } else {
            check(sqlite3_bind_null(statement_, index), "binding");
        }
    }

    /// True while there is a row to read.
    [[nodiscard]] bool step() {
        const int code = sqlite3_step(statement_);
        if (code == SQLITE_ROW) return true;
        if (code == SQLITE_DONE) return false;
        sqlite3_reset(statement_);
        throw_sqlite(db_, code, "running " + std::string{sqlite3_sql(statement_)});
    }
    void run() {
        while (step()) {
        }
    }
    void reset() noexcept { sqlite3_reset(statement_); }

    [[nodiscard]] std::int64_t int64(int column) const noexcept {
        return sqlite3_column_int64(statement_, column);
    }
    [[nodiscard]] bool is_null(int column) const noexcept {
        return sqlite3_column_type(statement_, column) == SQLITE_NULL;
    }
    /// Empty for SQL NULL.
    [[nodiscard]] std::optional<std::string_view> optional_text(int column) const noexcept {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
        if (data == nullptr) return std::nullopt;
        return std::string_view{data, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
    }
    [[nodiscard]] std::string_view text(int column) const noexcept {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
        const int size = sqlite3_column_bytes(statement_, column);
        return data == nullptr ? std::string_view{} : std::string_view{data, static_cast<std::size_t>(size)};
    }

  private:
    void check(int code, std::string_view doing) const {
        if (code != SQLITE_OK) throw_sqlite(db_, code, doing);
    }
    sqlite3* db_;
    sqlite3_stmt* statement_ = nullptr;
};

/// Resets a statement when leaving scope, so its bindings and read lock never outlive their use.
class Reset {
  public:
    explicit Reset(SqliteStatement& statement) noexcept : statement_(statement) {}
    Reset(const Reset&) = delete;
    Reset& operator=(const Reset&) = delete;
    ~Reset() { statement_.reset(); }

  private:
    SqliteStatement& statement_;
};

/// One connection, used by one thread at a time, with its prepared statements cached by SQL text.
class SqliteConnection {
  public:
    explicit SqliteConnection(const std::filesystem::path& path) {
        const int code = sqlite3_open_v2(
            path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
        if (code != SQLITE_OK) {
            const std::string message = "cannot open " + detail::quoted(path.string()) + ": " +
                                        (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code));
            sqlite3_close_v2(db_);
            throw StoreError(message);
        }
        sqlite3_extended_result_codes(db_, 1);
        // Another process may hold the write lock briefly (a checkpoint, a second store on the file).
        sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
    }
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;
    ~SqliteConnection() {
        statements_.clear();
        sqlite3_close_v2(db_);
    }

    [[nodiscard]] sqlite3* handle() const noexcept { return db_; }

    /// Puts the file in WAL mode. Changing the journal mode fails at once with SQLITE_BUSY instead of
    /// waiting on the busy timeout, which happens when several processes open a new file together:
    /// retry for as long as the timeout would have waited.
    void use_wal(const std::filesystem::path& path) {
        const auto until = std::chrono::steady_clock::now() + busy_timeout;
        for (auto wait = std::chrono::milliseconds{1};;
             wait = std::min(wait * 2, std::chrono::milliseconds{50})) {
            std::string mode;
            const auto keep_mode = [](void* out, int columns, char** values, char**) {
                if (columns > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
                return 0;
            };
            const int code = sqlite3_exec(db_, "PRAGMA journal_mode=WAL", keep_mode, &mode, nullptr);
            if (code == SQLITE_OK) {
                if (mode != "wal")
                    throw StoreError(detail::quoted(path.string()) + " cannot use WAL journaling (got " +
                                     detail::quoted(mode) + ")");
                return;
            }
            const int primary = code & 0xff;
            if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) ||
                std::chrono::steady_clock::now() >= until)
                throw_sqlite(db_, code, "running PRAGMA journal_mode=WAL");
            std::this_thread::sleep_for(wait);
        }
    }

    static constexpr std::chrono::milliseconds busy_timeout{10'000};

    void exec(const std::string& sql) {
        char* error = nullptr;
        const int code = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
        if (code != SQLITE_OK) {
            sqlite3_free(error);
            throw_sqlite(db_, code, "running " + sql);
        }
    }

    /// The first column of the first row, as an integer (for pragmas and counts).
    [[nodiscard]] std::int64_t query_int(const std::string& sql) {
        SqliteStatement statement{db_, sql};
        const std::int64_t value = statement.step() ? statement.int64(0) : 0;
        statement.reset();
        return value;
    }

    [[nodiscard]] SqliteStatement& statement(const std::string& sql) {
        auto& slot = statements_[sql];
        if (!slot) slot = std::make_unique<SqliteStatement>(db_, sql);
        return *slot;
    }

  private:
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, std::unique_ptr<SqliteStatement>> statements_;
};

/// Every table of schema version 1. Event and checkpoint stores may share one file.
inline constexpr const char* krmx_schema_v1 = R"sql(
CREATE TABLE krmx_streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL
);
CREATE TABLE krmx_events (
    position INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT,
    dispatcher TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    metadata TEXT,
    checksum INTEGER NOT NULL
);
CREATE UNIQUE INDEX krmx_events_by_stream ON krmx_events (stream_id, revision);
CREATE UNIQUE INDEX krmx_events_by_id ON krmx_events (event_id);
CREATE TABLE krmx_checkpoints (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    position INTEGER NOT NULL,
    version TEXT NOT NULL,
    saved_at INTEGER NOT NULL,
    checksum INTEGER NOT NULL
);
)sql";

/// Whether the file's own first bytes, read without SQLite, are the header of an SQLite database whose
/// application is krmx. SQLite reads a truncated file as malformed, as no database, or even as empty; the
/// header still tells a damaged krmx store from another application's file.
inline bool header_says_krmx(const std::filesystem::path& path) {
    std::ifstream file{path, std::ios::binary};
    std::array<unsigned char, 72> header{};
    if (!file.read(reinterpret_cast<char*>(header.data()), header.size())) return false;
    static constexpr std::string_view magic{"SQLite format 3\0", 16};
    if (!std::equal(magic.begin(), magic.end(), header.begin())) return false;
    // The application id: 4 bytes, big-endian, at offset 68.
    const std::uint32_t id = (std::uint32_t{header[68]} << 24) | (std::uint32_t{header[69]} << 16) |
                             (std::uint32_t{header[70]} << 8) | std::uint32_t{header[71]};
    return id == static_cast<std::uint32_t>(krmx_application_id);
}

/// Opens `path` as a krmx store file in WAL mode: creates the schema in a new or empty file, and refuses
/// (untouched) a file of another application, a file that is not a database, or a newer schema. A file
/// whose header says krmx but which SQLite cannot read as one (truncated, overwritten) is CorruptRecord.
inline std::unique_ptr<SqliteConnection> open_krmx_file(const std::filesystem::path& path) {
    const bool krmx_header = header_says_krmx(path);
    // Messages are built by appending: g++ 12 -O3 reports a false -Wrestrict (GCC bug 105651) for
    // `"literal" + std::string` once inlined here.
    const auto damaged = [&](std::string_view why) {
        std::string message = detail::quoted(path.string());
        message.append(" is a damaged krmx store: ").append(why);
        return CorruptRecord(message);
    };
    auto connection = std::make_unique<SqliteConnection>(path);
    const auto check = [&] {
        std::int64_t application_id = 0;
        try {
            application_id = connection->query_int("PRAGMA application_id");
        } catch (const CorruptRecord& e) {
            if (krmx_header) throw damaged(e.what());
            throw IncompatibleStoreFile(detail::quoted(path.string()) + " is not a krmx store: " + e.what());
        } catch (const IncompatibleStoreFile& e) {
            if (krmx_header) throw damaged(e.what());
            throw IncompatibleStoreFile(detail::quoted(path.string()) + " is not a krmx store: " + e.what());
        } catch (const StoreError& e) {
            if (krmx_header) throw;  // busy, I/O: not the file's fault
            throw IncompatibleStoreFile(detail::quoted(path.string()) + " is not a krmx store: " + e.what());
        }
        if (krmx_header && application_id != krmx_application_id) {
            std::string why{"its header names krmx, but SQLite reads application id "};
            why.append(std::to_string(application_id)).append(" (is it truncated?)");
            throw damaged(why);
        }
        const std::int64_t version = connection->query_int("PRAGMA user_version");
        const std::int64_t objects = connection->query_int("SELECT count(*) FROM sqlite_master");
        if (application_id == krmx_application_id) {
            if (version > krmx_schema_version) {
                throw IncompatibleStoreFile(detail::quoted(path.string()) + " has krmx schema version " +
                                            std::to_string(version) + ", newer than version " +
                                            std::to_string(krmx_schema_version) + " that this krmx supports");
            }
            if (version < 1)
                throw IncompatibleStoreFile(detail::quoted(path.string()) + " has no krmx schema version");
            return false;
        }
        if (application_id != 0 || objects != 0) {
            throw IncompatibleStoreFile(detail::quoted(path.string()) +
                                        " is not a krmx store: it is another application's " +
                                        "SQLite database (application_id " + std::to_string(application_id) +
                                        ", " + std::to_string(objects) + " schema objects)");
        }
        return true;
    };
    const bool fresh = check();
    // WAL: readers never block the writer, and a commit is one append to the log.
    connection->use_wal(path);
    if (fresh) {
        connection->exec("BEGIN IMMEDIATE");
        try {
            if (check()) {  // another process may have created it meanwhile
                connection->exec(krmx_schema_v1);
                connection->exec("PRAGMA application_id=" + std::to_string(krmx_application_id));
                connection->exec("PRAGMA user_version=" + std::to_string(krmx_schema_version));
            }
            connection->exec("COMMIT");
        } catch (...) {
            sqlite3_exec(connection->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
    }
    return connection;
}

/// A fast 64-bit hash for detecting damaged records (not for security). Fields are length-prefixed so
/// that moving bytes between adjacent fields changes the result.
class RecordHasher {
  public:
    explicit RecordHasher(std::uint64_t seed = 0x6B726D78'00000001ULL) noexcept : state_(seed) {}

    RecordHasher& add(std::uint64_t value) noexcept {
        mix(value);
        return *this;
    }
    RecordHasher& add(std::string_view text) noexcept {
        mix(text.size());
        std::size_t at = 0;
        // Two words per step: the multiply of the first is off the dependency chain, so this runs about
        // twice as fast as one word per step (replay verifies every record).
        for (; at + 16 <= text.size(); at += 16) {
            mix((load(text.data() + at) * 0x9E3779B97F4A7C15ULL) ^ std::rotl(load(text.data() + at + 8), 31));
        }
        for (; at + 8 <= text.size(); at += 8) mix(load(text.data() + at));
        if (at < text.size()) {
            std::uint64_t word = 0;  // byte by byte: cheaper than a variable-length memcpy call
            for (std::size_t shift = 0; at < text.size(); ++at, shift += 8) {
                word |= std::uint64_t{static_cast<unsigned char>(text[at])} << shift;
            }
            mix(word);
        }
        return *this;
    }
    /// An optional text: absent and empty hash differently.
    RecordHasher& add_optional(bool present, std::string_view text) noexcept {
        add(std::uint64_t{present ? 1U : 0U});
        return present ? add(text) : *this;
    }

    [[nodiscard]] std::uint64_t value() const noexcept {
        std::uint64_t h = state_;  // murmur3 finalizer
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return h;
    }

  private:
    // Little-endian on every machine, so a file's checksums do not depend on where it was written.
    static std::uint64_t load(const char* bytes) noexcept {
        std::uint64_t word;
        std::memcpy(&word, bytes, 8);
        if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
        return word;
    }
    void mix(std::uint64_t value) noexcept {
        state_ ^= value * 0x87c37b91114253d5ULL;
        state_ = std::rotl(state_, 27) * 0x4cf5ad432745937fULL + 0x52dce729ULL;
    }
    std::uint64_t state_;
};

}  // namespace krmx::detail
