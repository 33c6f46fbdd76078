#pragma once
// The PostgreSQL event store's reads: a stream, a window of the log as a batch (read_all, subscriptions),
// and a streamed bulk read (for_each_event) as binary COPY decoded row by row. Windows of positions are
// planned by detail/postgres_windows.hpp. Event rows come in binary: every column is bigint or text. Link
// the `krmx::postgres` CMake target.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/postgres_pool.hpp"
#include "krmx/store/detail/postgres_windows.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

class PgReads {
  public:
    /// Reads the events of `schema`; looks stream names up on connections of `pool` while a COPY streams.
    PgReads(const std::string& schema, PgPool& pool) : pool_(pool) {
        const std::string s = quoted_identifier(schema);
        sql_.head = krmx_head_sql(schema);
        sql_.columns =
            "SELECT position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, "
            "metadata FROM " +
            s + ".krmx_events ";
        sql_.stream_revision = "SELECT revision FROM " + s + ".krmx_streams WHERE name = $1";
        sql_.stream_id = "SELECT id FROM " + s + ".krmx_streams WHERE name = $1";
        sql_.stream_name = "SELECT name FROM " + s + ".krmx_streams WHERE id = $1";
        sql_.streams_named = "SELECT id FROM " + s + ".krmx_streams WHERE name = ANY(";
    }

    /// The head below which nothing is missing (krmx_head_sql).
    [[nodiscard]] Position head(PgPooledConnection& connection) const {
        return static_cast<Position>(connection.pg->exec(sql_.head).int64(0, 0));
    }

    /// The last revision of the stream `name` (a storable name), or nothing.
    [[nodiscard]] std::optional<Revision> stream_revision(PgPooledConnection& connection,
                                                          const std::string& name) const {
        const auto row = connection.pg->exec(sql_.stream_revision, {name});
        if (row.rows() == 0) return std::nullopt;
        return static_cast<Revision>(row.int64(0, 0));
    }

    /// At most `max_count` events of the stream `name` (a storable name) from revision `from` on.
    [[nodiscard]] std::vector<RecordedEvent> read_stream(PgPooledConnection& connection,
                                                         const std::string& name, Revision from,
                                                         std::size_t max_count) const {
        std::vector<RecordedEvent> result;
        const auto id = connection.pg->exec(sql_.stream_id, {name});
        if (id.rows() == 0) return result;
        const std::string stream_id{id.text(0, 0)};
        const std::string from_text = std::to_string(pg_bigint(from));
        const std::string limit_text = std::to_string(pg_bigint(max_count));
        const auto rows = connection.pg->exec(
            sql_.columns + "WHERE stream_id = $1 AND revision >= $2 ORDER BY revision LIMIT $3",
            std::array<PgParam, 3>{stream_id, from_text, limit_text}, binary);
        result.reserve(static_cast<std::size_t>(rows.rows()));
        for (int row = 0; row < rows.rows(); ++row)
            decode_row(connection, PgResultRow{rows, row}, result.emplace_back());
        return result;
    }

    /// Reads the events after `after` up to `up_to` that pass `filter`, at most `max_count`, into a vector.
    ///
    /// Read-ahead: the next window is sent before this one's rows are decoded, so that PostgreSQL produces it
    /// on the other core meanwhile, and its rows are pulled off the socket as they arrive. A full and wide
    /// unfiltered window also sends the next one of the same width when this read wants no more: a reader
    /// reading in batches asks for it next. A window sent by an earlier read is used only when full: a short
    /// one may be older than this read (an append that returned before it would be missing), whereas full
    /// windows of committed positions never change.
    std::vector<RecordedEvent> read_range(PgPooledConnection& connection, Position after, Position up_to,
                                          std::size_t max_count, const EventFilter& filter) const {
        std::vector<RecordedEvent> result;
        if (max_count == 0 || after >= up_to) return result;
        std::size_t remaining = max_count;
        PgWindowPlan plan{up_to, max_count, !filter.empty()};
        PgWindow current = plan.at(after, remaining);
        bool sent_here = false;
        for (;;) {
            const WindowQuery query = window_query(current, filter);
            const auto bound = query.bound();
            std::optional<PgResult> rows = connection.pg->take_sent(query.sql, bound);
            if (rows && !sent_here && static_cast<std::size_t>(rows->rows()) != current.limit) rows.reset();
            if (!rows) rows = connection.pg->exec(query.sql, bound, binary);
            const auto count = static_cast<std::size_t>(rows->rows());
            const Position last =
                count == 0 ? 0 : static_cast<Position>(rows->int64(static_cast<int>(count) - 1, 0));
            const Position covered = plan.covered(current, count, last);
            remaining -= count;
            std::optional<PgWindow> next;
            if (plan.more(current, count, covered, remaining)) {
                next = plan.at(covered, remaining);
                const WindowQuery next_query = window_query(*next, filter);
                connection.pg->send(next_query.sql, next_query.bound(), binary);
                sent_here = true;
            } else if (filter.empty() && count == current.limit && count >= read_ahead_width &&
                       current.to <=
                           static_cast<Position>(std::numeric_limits<std::int64_t>::max()) - count) {
                const WindowQuery ahead =
                    window_query(PgWindow{current.to, current.to + count, count}, filter);
                connection.pg->send(ahead.sql, ahead.bound(), binary);
            }
            result.reserve(result.size() + count);
            for (std::size_t row = 0; row < count; ++row) {
                if (row % 512 == 511) connection.pg->pull();
                decode_row(connection, PgResultRow{*rows, static_cast<int>(row)}, result.emplace_back());
            }
            if (!next) return result;
            current = *next;
        }
    }

    /// Streams the events after `after` up to `up_to` that pass `filter`, at most `remaining`, to
    /// `visit(RecordedEvent&)`: each window is one `COPY ... TO STDOUT (FORMAT binary)`, whose rows are
    /// decoded one at a time into `record` as they come off the socket. No result set is built (for a
    /// PGresult, libpq allocates and frees the whole window, and glibc hands that memory back to the system
    /// and faults it in again, window after window), and PostgreSQL produces the rows while they are
    /// applied. `after` and `remaining` follow what was delivered, so a retry resumes exactly there.
    template <class Visit>
    void stream_range(PgPooledConnection& connection, Position& after, Position up_to, std::size_t& remaining,
                      const EventFilter& filter, RecordedEvent& record, Visit&& visit) const {
        if (remaining == 0 || after >= up_to) return;
        PgWindowPlan plan{up_to, visit_window, !filter.empty()};
        for (;;) {
            const PgWindow window = plan.at(after, remaining);
            const std::string sql =
                "COPY (" + sql_.columns +
                window_clause(window, filter,
                              [&](const std::string& text) { return connection.pg->literal(text); }) +
                ") TO STDOUT (FORMAT binary)";
            std::size_t count = 0;
            CopyTuple tuple;
            const CopyingOn copying{connection};
            connection.pg->copy_out(sql, [&](std::string_view message) {
                if (!tuple.read(message)) return;
                if (tuple.fields() != 9)
                    throw CorruptRecord("a row that PostgreSQL sent has the wrong columns");
                decode_row(connection, tuple, record);
                if (record.position <= after || record.position > window.to || count == window.limit)
                    throw CorruptRecord(
                        "PostgreSQL sent an event out of order or outside the window asked for");
                after = record.position;
                ++count;
                --remaining;
                visit(record);
            });
            const Position covered = plan.covered(window, count, after);
            after = std::max(after, covered);
            if (!plan.more(window, count, covered, remaining)) return;
        }
    }

    /// Where a read may go: a head below which nothing is missing, or the largest position when `filter` is
    /// empty (an unfiltered read stops at its first short window by itself).
    Position read_up_to(PgPooledConnection& connection, const EventFilter& filter) const {
        return filter.empty() ? static_cast<Position>(std::numeric_limits<std::int64_t>::max())
                              : head(connection);
    }

  private:
    // Event rows come in binary (see Results): every column is bigint or text.
    static constexpr auto binary = Results::binary;
    // Batched reads of at least this many events read the next batch ahead (see read_range).
    static constexpr std::size_t read_ahead_width = 1024;
    // The events one window of a streamed read holds (see stream_range).
    static constexpr std::size_t visit_window = 16384;

    struct Statements {
        std::string head, columns, stream_revision, stream_id, stream_name, streams_named;
    };

    // A window's WHERE clause and what follows; `value(text)` puts a value into the SQL text: a parameter
    // ("$n") for a prepared statement, a literal for a COPY.
    template <class Value>
    std::string window_clause(const PgWindow& window, const EventFilter& filter, Value&& value) const {
        std::string sql = "WHERE position > " + value(std::to_string(pg_bigint(window.after))) +
                          " AND position <= " + value(std::to_string(pg_bigint(window.to)));
        // A name no event can have (see EventStore) matches nothing, and PostgreSQL would refuse one that is
        // not UTF-8 (libpq would cut one with a NUL short): it is left out, and a list of nothing else
        // matches nothing.
        const auto names_of = [](const std::vector<std::string>& names) -> std::optional<std::string> {
            PgArray array;
            bool any = false;
            for (const auto& name : names) {
                if (!storable_name(name)) continue;
                array.add(name);
                any = true;
            }
            return any ? std::optional{std::move(array).done()} : std::nullopt;
        };
        if (!filter.streams.empty()) {
            const auto names = names_of(filter.streams);
            sql += names ? " AND stream_id IN (" + sql_.streams_named + value(*names) + "::text[]))"
                         : " AND false";
        }
        if (!filter.types.empty()) {
            const auto types = names_of(filter.types);
            sql += types ? " AND type = ANY(" + value(*types) + "::text[])" : " AND false";
        }
        return sql + " ORDER BY position LIMIT " + value(std::to_string(pg_bigint(window.limit)));
    }

    // A window as a prepared statement. Its parameters are texts; bound() views them.
    struct WindowQuery {
        std::string sql;
        std::vector<std::string> texts;
        [[nodiscard]] std::vector<PgParam> bound() const { return {texts.begin(), texts.end()}; }
    };

    WindowQuery window_query(const PgWindow& window, const EventFilter& filter) const {
        WindowQuery query;
        query.sql = sql_.columns + window_clause(window, filter, [&](std::string text) {
                        query.texts.push_back(std::move(text));
                        return "$" + std::to_string(query.texts.size());
                    });
        return query;
    }

    const std::string& stream_name(PgPooledConnection& connection, std::int64_t id) const {
        if (connection.last_stream != nullptr && connection.last_stream_id == id)
            return *connection.last_stream;
        auto known = connection.stream_names.find(id);
        if (known == connection.stream_names.end()) {
            const auto lookup = [&](PgPooledConnection& on) {
                const std::string id_text = std::to_string(id);
                const auto row = on.pg->exec(sql_.stream_name, {id_text});
                if (row.rows() == 0) {
                    throw CorruptRecord("an event refers to stream id " + std::to_string(id) +
                                        ", which does not exist");
                }
                return std::string{row.text(0, 0)};
            };
            // In the middle of a COPY the connection cannot run another statement: ask on another one.
            std::string name = connection.copying ? pool_.retrying(nullptr, lookup) : lookup(connection);
            known = connection.stream_names.emplace(id, std::move(name)).first;
        }
        connection.last_stream_id = id;
        connection.last_stream = &known->second;
        return known->second;
    }

    // One row into `event`, every member assigned (the event may be a reused one that was moved from).
    // Columns: position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata.
    template <class Row>
    void decode_row(PgPooledConnection& connection, const Row& row, RecordedEvent& event) const {
        event.position = static_cast<Position>(row.int64(0));
        event.stream = stream_name(connection, row.int64(1));
        event.revision = static_cast<Revision>(row.int64(2));
        event.id = row.text(3);
        event.type = row.text(4);
        event.dispatcher = row.text(6);
        event.timestamp = std::chrono::system_clock::time_point{
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::nanoseconds{row.int64(7)})};
        const auto payload = row.optional_text(5);
        const auto metadata = row.optional_text(8);
        try {
            if (payload) {
                event.payload = nlohmann::json::parse(payload->begin(), payload->end());
            } else {
                event.payload.reset();
            }
            if (metadata) {
                event.metadata = nlohmann::json::parse(metadata->begin(), metadata->end());
            } else if (!event.metadata.is_object() || !event.metadata.empty()) {
                event.metadata = nlohmann::json::object();
            }
        } catch (const nlohmann::json::exception& e) {
            throw CorruptRecord("the event at position " + std::to_string(event.position) +
                                " holds JSON that does not parse: " + e.what());
        }
    }

    PgPool& pool_;
    Statements sql_;
};

}  // namespace krmx::detail
