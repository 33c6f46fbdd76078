#pragma once
// The SQLite event store's checks for records missing from its file (a damaged page, a row deleted by
// hand): positions are dense, and a stream's revisions run from 0 to the revision its row records, so a read
// up to a head or revision known to be committed must find every record on the way. A missing one is
// CorruptRecord, never skipped. Link the `krmx::sqlite` CMake target.

#include <cstdint>
#include <string>
#include <string_view>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

// Messages are built by appending: `"literal" + std::string` draws a false -Wrestrict from g++ 12 -O3 (GCC
// bug 105651).
[[nodiscard]] inline CorruptRecord missing_revision(std::string_view stream, Revision missing,
                                                    Revision last) {
    std::string message{"the stream "};
    message.append(quoted(stream)).append(" has no event at revision ").append(std::to_string(missing));
    message.append(", though it is at revision ").append(std::to_string(last));
    message.append(": a record is missing from the file");
    return CorruptRecord(message);
}

[[nodiscard]] inline CorruptRecord missing_position(Position missing) {
    std::string message{"there is no event at position "};
    message.append(std::to_string(missing));
    message.append(", though later ones are committed: a record is missing from the file");
    return CorruptRecord(message);
}

/// Throws unless the record a stream read just got, at revision `got`, is the one it expected: the read
/// asked for consecutive revisions of a stream whose last revision is `last`.
inline void expect_revision(std::string_view stream, Revision got, Revision expected, Revision last) {
    if (got != expected) throw missing_revision(stream, expected, last);
}

/// Throws unless a stream read that ended before its limit (`short_read`) at revision `next` (the next one
/// it would have read) reached the end of a stream whose last revision is `last`.
inline void expect_stream_end(std::string_view stream, Revision next, Revision last, bool short_read) {
    if (short_read && next <= last) throw missing_revision(stream, next, last);
}

/// Throws unless the record an unfiltered read just got, at position `got`, is the next one, `expected`.
inline void expect_position(Position got, Position expected) {
    if (got != expected) throw missing_position(expected);
}

/// Throws unless an unfiltered read that ended before its limit (`short_read`) at position `next` (the
/// next one it would have read) reached `known_head`, below which every event is committed.
inline void expect_log_end(Position next, Position known_head, bool short_read) {
    if (short_read && next <= known_head) throw missing_position(next);
}

/// Throws unless every position in (after, end] holds an event. For filtered reads, which skip positions by
/// design: one count over the range (primary key only) checks it, and only a count that falls short looks
/// for the first position missing.
inline void check_dense(SqliteConnection& connection, Position after, Position end) {
    auto& count =
        connection.statement("SELECT count(*) FROM krmx_events WHERE position > ?1 AND position <= ?2");
    Reset reset{count};
    // Both are at most a committed head, which fits an SQLite integer.
    count.bind(1, static_cast<std::int64_t>(after));
    count.bind(2, static_cast<std::int64_t>(end));
    if (count.step() && static_cast<Position>(count.int64(0)) == end - after) return;
    auto& positions = connection.statement(
        "SELECT position FROM krmx_events WHERE position > ?1 AND position <= ?2 ORDER BY position");
    Reset reset_positions{positions};
    positions.bind(1, static_cast<std::int64_t>(after));
    positions.bind(2, static_cast<std::int64_t>(end));
    Position expected = after + 1;
    while (positions.step() && static_cast<Position>(positions.int64(0)) == expected) ++expected;
    throw missing_position(expected);
}

}  // namespace krmx::detail
