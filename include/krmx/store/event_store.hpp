#pragma once
// The event store vocabulary shared by every store: the records that go in and come out, expected
// revisions, append results, filters, subscription callbacks, the errors, and the `EventStore` concept.
//
// Errors are exceptions, all derived from `krmx::StoreError`: a store is I/O, and a failed append must not
// be mistaken for a successful one by a caller that forgot to look. Every store checks its input before it
// writes anything, so bad input gets an error and leaves the store exactly as it was.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/json_optional.hpp"  // before anything instantiates a std::optional<json> conversion
#include "krmx/core/subscription.hpp"

namespace krmx {

/// Global position of an event in a store: 1 for the first event, dense and increasing. 0 means "before
/// the first event", so a reader or subscriber that has seen nothing yet is "after position 0".
using Position = std::uint64_t;
/// Revision of an event within its stream: 0 for the stream's first event.
using Revision = std::uint64_t;

/// "No limit" for the `max_count` of a read. Large reads are fine for tests; replays should read in batches.
inline constexpr std::size_t read_unbounded = std::numeric_limits<std::size_t>::max();

/// A fresh event id: a version 7 UUID (RFC 9562), i.e. a millisecond timestamp, a counter and random bits.
/// Ids from one process sort in the order they were made, so a store's id index grows at its end instead
/// of being written all over (much less write amplification than random ids). Generate ids before
/// appending to make retries idempotent.
[[nodiscard]] inline std::string new_event_id() {
    // 48 bits of milliseconds and 12 bits of counter, strictly increasing within the process.
    static std::atomic<std::uint64_t> last{0};
    const auto now_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count());
    std::uint64_t previous = last.load(std::memory_order_relaxed);
    std::uint64_t stamp = 0;
    do {
        stamp = std::max(now_ms << 12, previous + 1);
    } while (!last.compare_exchange_weak(previous, stamp, std::memory_order_relaxed));
    // One generator per thread: no lock, and seeded from the OS so processes never share a sequence.
    thread_local std::mt19937_64 generator{[] {
        std::random_device device;
        return (std::uint64_t{device()} << 32) ^ device();
    }()};
    const std::uint64_t high = ((stamp >> 12) << 16) | 0x7000 | (stamp & 0xFFF);  // version 7
    const std::uint64_t low =
        (generator() & ~(std::uint64_t{0x3} << 62)) | (std::uint64_t{0x2} << 62);  // variant
    static constexpr char digits[] = "0123456789abcdef";
    std::string id(36, '-');
    std::size_t at = 0;
    for (int nibble = 0; nibble < 32; ++nibble) {
        if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
        const std::uint64_t word = nibble < 16 ? high : low;
        id[at++] = digits[(word >> (60 - 4 * (nibble % 16))) & 0xF];
    }
    return id;
}

/// An event to append. Everything except `type` may be left default.
struct NewEvent {
    /// Unique across the store. Empty: the store generates one (see new_event_id). Give your own id to make
    /// retries safe: repeating an append with the same ids stores nothing twice.
    std::string id{};
    std::string type{};
    /// Empty means the event has no payload, which is not the same as a `null` payload (as in krmx::Event).
    std::optional<nlohmann::json> payload{};
    std::string dispatcher{};
    /// Default (the epoch): the store fills in `system_clock::now()` when it accepts the append.
    std::chrono::system_clock::time_point timestamp{};
    /// A JSON object; `null` counts as the empty object.
    nlohmann::json metadata = nlohmann::json::object();
};

/// The metadata member in which writers record the schema version of an event's payload (1, 2, ...; no
/// member means version 1). Readers upcast older versions to the current shape (see krmx::EventCatalog).
inline constexpr std::string_view schema_metadata_key = "schema";

/// The schema version a stored event's metadata records: 1 when it records none, 0 when what it records is
/// not a version (readers refuse such a record rather than guess).
[[nodiscard]] inline std::uint32_t stored_schema_version(const nlohmann::json& metadata) {
    if (!metadata.is_object()) return 1;
    const auto found = metadata.find(schema_metadata_key);
    if (found == metadata.end()) return 1;
    if (!found->is_number_unsigned() && !found->is_number_integer()) return 0;
    const auto v = found->get<std::int64_t>();
    return v < 1 || v > 1'000'000 ? 0 : static_cast<std::uint32_t>(v);
}

/// An event as stored.
struct RecordedEvent {
    Position position = 0;
    std::string stream{};
    Revision revision = 0;
    std::string id{};
    std::string type{};
    std::optional<nlohmann::json> payload{};
    std::string dispatcher{};
    std::chrono::system_clock::time_point timestamp{};
    nlohmann::json metadata = nlohmann::json::object();

    friend bool operator==(const RecordedEvent&, const RecordedEvent&) = default;
};

/// What an append expects of its stream before it writes.
class ExpectedRevision {
  public:
    enum class Kind { any, no_stream, stream_exists, exact };

    /// Append whatever the stream holds.
    [[nodiscard]] static constexpr ExpectedRevision any() noexcept { return {Kind::any, 0}; }
    /// The stream must have no events yet.
    [[nodiscard]] static constexpr ExpectedRevision no_stream() noexcept { return {Kind::no_stream, 0}; }
    /// The stream must have at least one event.
    [[nodiscard]] static constexpr ExpectedRevision stream_exists() noexcept {
        return {Kind::stream_exists, 0};
    }
    /// The stream's last event must have revision `revision`; the first appended event gets `revision + 1`.
    [[nodiscard]] static constexpr ExpectedRevision exact(Revision revision) noexcept {
        return {Kind::exact, revision};
    }

    [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }
    /// Meaningful for `exact` only.
    [[nodiscard]] constexpr Revision revision() const noexcept { return revision_; }

    /// Whether a stream whose last revision is `actual` (empty: no stream) satisfies this expectation.
    [[nodiscard]] constexpr bool matches(std::optional<Revision> actual) const noexcept {
        switch (kind_) {
            case Kind::any:
                return true;
            case Kind::no_stream:
                return !actual.has_value();
            case Kind::stream_exists:
                return actual.has_value();
            case Kind::exact:
                return actual.has_value() && *actual == revision_;
        }
        return false;
    }

    [[nodiscard]] std::string to_string() const {
        switch (kind_) {
            case Kind::any:
                return "any";
            case Kind::no_stream:
                return "no stream";
            case Kind::stream_exists:
                return "stream exists";
            case Kind::exact:
                return "revision " + std::to_string(revision_);
        }
        return "?";
    }

    friend constexpr bool operator==(ExpectedRevision, ExpectedRevision) noexcept = default;

  private:
    constexpr ExpectedRevision(Kind kind, Revision revision) noexcept : kind_(kind), revision_(revision) {}
    Kind kind_;
    Revision revision_;
};

/// Where a successful append put its events. Positions and revisions are of the first and last event.
struct [[nodiscard]] AppendResult {
    Position first_position = 0;
    Position last_position = 0;
    Revision first_revision = 0;
    Revision last_revision = 0;
    /// True when every event was already stored by an earlier, identical append: nothing was written.
    bool already_stored = false;

    friend bool operator==(const AppendResult&, const AppendResult&) = default;
};

/// Selects events by stream and type. Empty lists select everything.
struct EventFilter {
    std::vector<std::string> streams{};
    std::vector<std::string> types{};

    [[nodiscard]] bool empty() const noexcept { return streams.empty() && types.empty(); }
    [[nodiscard]] bool matches(std::string_view stream, std::string_view type) const {
        const auto has = [](const std::vector<std::string>& list, std::string_view value) {
            return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
        };
        return has(streams, stream) && has(types, type);
    }
};

/// Where a subscription starts. Positions are exclusive: `after(p)` delivers `p + 1` first.
class SubscribeFrom {
  public:
    [[nodiscard]] static constexpr SubscribeFrom start() noexcept { return SubscribeFrom{false, 0}; }
    /// Only events appended after the subscription was made.
    [[nodiscard]] static constexpr SubscribeFrom end() noexcept { return SubscribeFrom{true, 0}; }
    [[nodiscard]] static constexpr SubscribeFrom after(Position position) noexcept {
        return SubscribeFrom{false, position};
    }

    [[nodiscard]] constexpr bool is_end() const noexcept { return end_; }
    [[nodiscard]] constexpr Position position() const noexcept { return position_; }

  private:
    constexpr SubscribeFrom(bool end, Position position) noexcept : end_(end), position_(position) {}
    bool end_;
    Position position_;
};

/// The callbacks of a subscription. Stores call them on a thread owned by the subscription, one at a
/// time, in position order: first the stored events (catch-up), then `on_caught_up` exactly once, then
/// live events as they are committed, with no gap and no duplicate in between.
struct SubscriptionHandlers {
    std::function<void(const RecordedEvent&)> on_event{};
    std::function<void()> on_caught_up{};
    /// A callback that throws, or a failed read (e.g. a corrupt record), ends the subscription; this says
    /// why.
    std::function<void(std::exception_ptr)> on_error{};
};

// ---- errors ----

/// Failures a store recovered from or could tell nobody of, so that no exception reported them: a number
/// that keeps growing says something is wrong. Each store counts what applies to it; the rest stay 0.
struct StoreStatistics {
    /// Subscriptions whose `on_error` handler threw (the subscription had ended; there is nobody else to
    /// tell).
    std::uint64_t error_handler_failures = 0;
    /// WAL checkpoints of the background checkpointer that failed (SQLite; the write-ahead log grows until
    /// one succeeds).
    std::uint64_t failed_checkpoints = 0;
    /// Operations repeated on a new connection after theirs was lost (PostgreSQL).
    std::uint64_t connection_retries = 0;
    /// Times the connection that listens for appends failed and was opened again (PostgreSQL; live
    /// subscriptions wait meanwhile).
    std::uint64_t listener_failures = 0;

    friend bool operator==(const StoreStatistics&, const StoreStatistics&) = default;
};

/// Base of every error a store reports.
class StoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// The stream was not at the expected revision; nothing was written.
class WrongExpectedRevision : public StoreError {
  public:
    WrongExpectedRevision(std::string stream, ExpectedRevision expected, std::optional<Revision> actual)
        : StoreError("stream " + detail::quoted(stream) + " expected " + expected.to_string() +
                     " but is at " +
                     (actual ? "revision " + std::to_string(*actual) : std::string{"no stream"})),
          stream_(std::move(stream)),
          expected_(expected),
          actual_(actual) {}

    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] ExpectedRevision expected() const noexcept { return expected_; }
    /// The stream's actual last revision; empty when the stream has no events.
    [[nodiscard]] std::optional<Revision> actual() const noexcept { return actual_; }

  private:
    std::string stream_;
    ExpectedRevision expected_;
    std::optional<Revision> actual_;
};

/// An event id is already stored for a different event (other content, stream or revision); nothing was
/// written. A repeat of the very same append is not an error (see `AppendResult::already_stored`).
class DuplicateEventId : public StoreError {
  public:
    DuplicateEventId(std::string event_id, Position stored_at)
        : StoreError("event id " + detail::quoted(event_id) +
                     " is already stored for a different event at position " + std::to_string(stored_at)),
          event_id_(std::move(event_id)),
          stored_at_(stored_at) {}

    [[nodiscard]] const std::string& event_id() const noexcept { return event_id_; }
    [[nodiscard]] Position stored_at() const noexcept { return stored_at_; }

  private:
    std::string event_id_;
    Position stored_at_;
};

/// The append itself is malformed: a stream name, type, event id or dispatcher that breaks the name rule
/// (krmx/store/names.hpp: empty where a name is needed, longer than max_name_bytes, not UTF-8, a NUL), no
/// events, metadata that is not an object, a payload or metadata that JSON cannot hold as it is (nested
/// deeper than detail::json_max_event_depth = 128 levels, NaN or infinity, text that is not UTF-8), an id
/// repeated within the append. Nothing was written, and every store refuses the same appends.
class InvalidAppend : public StoreError {
  public:
    using StoreError::StoreError;
};

/// A stored record failed its integrity check. It is reported, never served.
class CorruptRecord : public StoreError {
  public:
    using StoreError::StoreError;
};

/// The file is not a krmx store this version can open: another application's database, not a database
/// at all, or a newer krmx schema. The file is left untouched.
class IncompatibleStoreFile : public StoreError {
  public:
    using StoreError::StoreError;
};

// ---- the concept ----

/// An append-only log of events in named streams.
/// - `append` is atomic (all events or none) and checks the expected revision first; a repeated append
///   whose event ids are all stored, at the same stream and revisions, succeeds without writing.
/// - `read_stream(stream, from_revision, max_count)` reads one stream from a revision (inclusive);
///   `read_all(after_position, max_count, filter)` reads every stream after a position (exclusive).
/// - `subscribe` delivers catch-up, one `caught_up`, then live events; positions are never out of order.
/// - `head_position()` is the last committed position (0 when empty); `stream_revision` the stream's last
///   revision (empty when the stream has no events).
/// - Names (streams, types, event ids, dispatchers) keep one rule on every store (krmx/store/names.hpp): an
///   append that breaks it is InvalidAppend, and a read or a filter given a name that breaks it finds
///   nothing (no event can have that name), without an error.
template <class S>
concept EventStore = requires(S& store, const S& const_store, std::string_view stream,
                              ExpectedRevision expected, std::span<const NewEvent> events,
                              const NewEvent& event, Revision revision, Position position,
                              std::size_t max_count, const EventFilter& filter, SubscribeFrom from,
                              SubscriptionHandlers handlers) {
    { store.append(stream, expected, events) } -> std::same_as<AppendResult>;
    { store.append(stream, expected, event) } -> std::same_as<AppendResult>;
    { const_store.read_stream(stream, revision, max_count) } -> std::same_as<std::vector<RecordedEvent>>;
    { const_store.read_all(position, max_count, filter) } -> std::same_as<std::vector<RecordedEvent>>;
    { const_store.stream_revision(stream) } -> std::same_as<std::optional<Revision>>;
    { const_store.head_position() } -> std::same_as<Position>;
    { store.subscribe(from, std::move(handlers), filter) } -> std::same_as<Subscription>;
};

/// A store that streams a bulk read itself: `for_each_after(after_position, max_count, filter, f)` calls
/// `f(RecordedEvent&)` for each event as in for_each_event and returns how many there were. PostgreSQL
/// does, so that a replay decodes rows while the server produces the next ones and no batch sits in RAM.
template <class S>
concept StreamingReads = requires(const S& store, Position position, std::size_t max_count,
                                  const EventFilter& filter, void (*f)(RecordedEvent&)) {
    { store.for_each_after(position, max_count, filter, f) } -> std::same_as<std::size_t>;
};

/// Calls `f(RecordedEvent&)` (the record is the callee's to move from) with every event after `position`
/// that passes `filter`, in position order, at most `max_count`, up to the end of the store as its reads
/// find it (events appended meanwhile may or may not be delivered; read the head first to know what will
/// be). Returns how many there were. Memory stays bounded (a batch at a time, or a row at a time where the
/// store streams) however long the log is: this is the way to replay a store or catch up. If `f` throws,
/// the read stops and the exception reaches the caller unchanged; the store stays usable.
template <EventStore Store, std::invocable<RecordedEvent&> F>
std::size_t for_each_event(const Store& store, Position position, F&& f, const EventFilter& filter = {},
                           std::size_t max_count = read_unbounded) {
    if constexpr (StreamingReads<Store>) {
        return store.for_each_after(position, max_count, filter, f);
    } else {
        constexpr std::size_t batch = 4096;
        std::size_t count = 0;
        while (count < max_count) {
            const std::size_t wanted = std::min(batch, max_count - count);
            auto records = store.read_all(position, wanted, filter);
            for (auto& record : records) {
                position = record.position;
                f(record);
            }
            count += records.size();
            if (records.size() < wanted) break;
        }
        return count;
    }
}

/// Calls `f(RecordedEvent&)` with every event of `stream`, in order, reading `batch` events at a time so
/// that memory stays bounded however long the stream is; returns how many there were.
template <EventStore Store, class F>
std::size_t for_each_in_stream(const Store& store, std::string_view stream, std::size_t batch, F&& f) {
    std::size_t count = 0;
    for (Revision from = 0;;) {
        auto records = store.read_stream(stream, from, batch);
        for (auto& record : records) f(record);
        count += records.size();
        if (records.size() < batch) return count;
        from = records.back().revision + 1;
    }
}

}  // namespace krmx
