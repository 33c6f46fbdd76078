#pragma once
// The PostgreSQL event store's appends. The usual one is one round trip: krmx_append (detail/postgres.hpp),
// a function in the schema, takes the schema's advisory lock, checks the expected revision and inserts, and
// its statement commits. Only an append whose event ids may be stored already (a retry after a lost
// connection, or ids the caller chose that turn out to exist) goes step by step in a transaction of its own,
// to tell a repeat from a conflict. Link the `krmx::postgres` CMake target.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/postgres_pool.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// An append that passed check_append, ready to be sent (again, after a lost connection).
struct PgAppendRequest {
    std::string stream;
    ExpectedRevision expected = ExpectedRevision::any();
    std::vector<PendingEvent> events;

    PgAppendRequest(std::string_view stream_name, ExpectedRevision expected_revision,
                    std::span<const NewEvent> new_events)
        : stream(stream_name), expected(expected_revision) {
        events.reserve(new_events.size());
        for (const NewEvent& event : new_events) events.push_back(pending_event(event));
    }
};

/// Appends requests to one schema and publishes each new head to `notifier`.
class PgAppender {
  public:
    PgAppender(const std::string& schema, std::shared_ptr<HeadNotifier> notifier)
        : channel_(krmx_channel(schema)), notifier_(std::move(notifier)) {
        const std::string s = quoted_identifier(schema);
        const std::string literal = "'" + schema + "'";
        sql_.lock = "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(krmx_advisory_class) +
                    ", hashtext(" + literal + "))";
        sql_.head_and_stream = "SELECT (SELECT coalesce(max(position), 0) FROM " + s +
                               ".krmx_events), s.id, s.revision FROM (SELECT 1) AS one LEFT JOIN " + s +
                               ".krmx_streams s ON s.name = $1";
        sql_.find_events =
            "SELECT e.event_id, e.position, s.name, e.revision, e.type, e.payload, e.dispatcher, e.metadata "
            "FROM " +
            s + ".krmx_events e JOIN " + s +
            ".krmx_streams s ON s.id = e.stream_id "
            "WHERE e.event_id = ANY($1::text[])";
        sql_.insert_stream =
            "INSERT INTO " + s + ".krmx_streams (name, revision) VALUES ($1, $2) RETURNING id";
        sql_.update_stream = "UPDATE " + s + ".krmx_streams SET revision = $2 WHERE id = $1";
        sql_.insert_events =
            "INSERT INTO " + s +
            ".krmx_events (position, stream_id, revision, event_id, type, payload, "
            "dispatcher, timestamp, metadata) SELECT $1::bigint + u.i - 1, $2::bigint, $3::bigint + u.i - 1, "
            "u.event_id, u.type, u.payload, u.dispatcher, u.ts, u.metadata FROM unnest($4::text[], "
            "$5::text[], "
            "$6::text[], $7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY AS u(event_id, type, payload, "
            "dispatcher, ts, metadata, i)";
        sql_.append = "SELECT outcome, head, actual FROM " + s +
                      ".krmx_append($1, $2::int, $3::bigint, $4::text[], $5::text[], $6::text[], $7::text[], "
                      "$8::bigint[], $9::text[], $10::boolean, $11)";
    }

    /// One round trip (krmx_append_function): what append_in_steps does, inside PostgreSQL. When an id of
    /// the request is stored already, append_in_steps decides whether it is a repeat. `repeat_attempt`:
    /// an earlier attempt lost its connection, and may have committed.
    AppendResult append(PgPooledConnection& connection, const PgAppendRequest& request, bool repeat_attempt) {
        const bool check_ids =
            repeat_attempt || std::any_of(request.events.begin(), request.events.end(),
                                          [](const PendingEvent& e) { return e.caller_id; });
        auto arrays = event_arrays(request);
        const std::string kind = std::to_string(static_cast<int>(request.expected.kind()));
        const std::string expected = std::to_string(pg_bigint(request.expected.revision()));
        const PgParam bound[] = {request.stream, kind,      expected,  arrays[0], arrays[1],
                                 arrays[2],      arrays[3], arrays[4], arrays[5], check_ids ? "t" : "f",
                                 channel_};
        const auto row = connection.pg->exec(sql_.append, bound);
        const std::int64_t outcome = row.int64(0, 0);
        const auto head = static_cast<Position>(row.int64(0, 1));
        const std::optional<Revision> actual =
            row.is_null(0, 2) ? std::nullopt : std::optional{static_cast<Revision>(row.int64(0, 2))};
        if (outcome == 1) return append_in_steps(connection, request, repeat_attempt);
        if (outcome == 2) throw WrongExpectedRevision(request.stream, request.expected, actual);
        const Revision first_revision = actual ? *actual + 1 : 0;
        const Position last = head + request.events.size();
        notifier_->publish(last);
        return AppendResult{head + 1, last, first_revision, first_revision + request.events.size() - 1};
    }

  private:
    struct Statements {
        std::string lock, head_and_stream, find_events, insert_stream, update_stream, insert_events, append;
    };

    // The events of a request as the six PostgreSQL arrays of krmx_events' columns.
    static std::array<std::string, 6> event_arrays(const PgAppendRequest& request) {
        PgArray ids, types, payloads, dispatchers, timestamps, metadata;
        for (const PendingEvent& event : request.events) {
            ids.add(event.id);
            types.add(event.type);
            payloads.add(event.payload ? std::optional<std::string_view>{*event.payload} : std::nullopt);
            dispatchers.add(event.dispatcher);
            timestamps.add(event.timestamp);
            metadata.add(event.metadata ? std::optional<std::string_view>{*event.metadata} : std::nullopt);
        }
        return {std::move(ids).done(),         std::move(types).done(),      std::move(payloads).done(),
                std::move(dispatchers).done(), std::move(timestamps).done(), std::move(metadata).done()};
    }

    // The append as separate statements in one transaction; for requests whose ids may be stored already.
    AppendResult append_in_steps(PgPooledConnection& connection, const PgAppendRequest& request,
                                 bool repeat_attempt) {
        PgConnection& pg = *connection.pg;
        pg.exec(sql_.lock);
        try {
            const auto found = pg.exec(sql_.head_and_stream, {request.stream});
            Position head = static_cast<Position>(found.int64(0, 0));
            std::optional<std::int64_t> stream_id;
            std::optional<Revision> actual;
            if (!found.is_null(0, 1)) {
                stream_id = found.int64(0, 1);
                actual = static_cast<Revision>(found.int64(0, 2));
            }
            // After a lost connection the first attempt may have committed: look for our own ids too.
            if (auto repeat = find_repeat(pg, request, repeat_attempt)) {
                pg.rollback();
                // Our own generated ids found again: the lost commit did happen, and it was this append.
                const bool caller_ids = std::any_of(request.events.begin(), request.events.end(),
                                                    [](const PendingEvent& e) { return e.caller_id; });
                if (!caller_ids) repeat->already_stored = false;
                return *repeat;
            }
            if (!request.expected.matches(actual)) {
                throw WrongExpectedRevision(request.stream, request.expected, actual);
            }
            const Revision first_revision = actual ? *actual + 1 : 0;
            const Revision last_revision = first_revision + request.events.size() - 1;
            const std::string last_revision_text = std::to_string(pg_bigint(last_revision));
            if (!stream_id) {
                stream_id = pg.exec(sql_.insert_stream, {request.stream, last_revision_text}).int64(0, 0);
            } else {
                const std::string id_text = std::to_string(*stream_id);
                pg.exec(sql_.update_stream, {id_text, last_revision_text});
            }
            auto arrays = event_arrays(request);
            const Position first_position = head + 1;
            head += request.events.size();
            const std::string params[] = {std::to_string(pg_bigint(first_position)),
                                          std::to_string(*stream_id),
                                          std::to_string(pg_bigint(first_revision))};
            const PgParam bound[] = {params[0], params[1], params[2], arrays[0], arrays[1],
                                     arrays[2], arrays[3], arrays[4], arrays[5]};
            pg.exec(sql_.insert_events, bound);
            // The notification is delivered when (and only if) the transaction commits.
            const auto committed =
                pg.exec("SELECT pg_notify('" + channel_ + "', '" + std::to_string(head) + "'); COMMIT");
            if (committed.command_status() != "COMMIT") {
                throw StoreError("PostgreSQL rolled back an append to " + detail::quoted(request.stream));
            }
            notifier_->publish(head);
            return AppendResult{first_position, head, first_revision, last_revision};
        } catch (...) {
            pg.rollback();
            throw;
        }
    }

    // See MemoryEventStore::find_repeat: the same rules, over stored rows. With `all_ids`, ids the store
    // generated are looked up too (a retry after a lost connection).
    std::optional<AppendResult> find_repeat(PgConnection& pg, const PgAppendRequest& request,
                                            bool all_ids) const {
        PgArray wanted;
        bool any = false;
        for (const PendingEvent& event : request.events) {
            if (event.caller_id || all_ids) {
                wanted.add(event.id);
                any = true;
            }
        }
        if (!any) return std::nullopt;
        const auto rows = pg.exec(sql_.find_events, {std::move(wanted).done()});
        std::unordered_map<std::string_view, int> stored;
        for (int row = 0; row < rows.rows(); ++row) stored.emplace(rows.text(row, 0), row);
        std::optional<AppendResult> found;
        for (std::size_t i = 0; i < request.events.size(); ++i) {
            const PendingEvent& event = request.events[i];
            const auto at = (event.caller_id || all_ids) ? stored.find(event.id) : stored.end();
            if (at == stored.end()) {
                if (found) throw DuplicateEventId(request.events[0].id, found->first_position);
                continue;
            }
            const int row = at->second;
            const auto position = static_cast<Position>(rows.int64(row, 1));
            const auto revision = static_cast<Revision>(rows.int64(row, 3));
            const bool fits = rows.text(row, 2) == request.stream && rows.text(row, 4) == event.type &&
                              same_json(rows.optional_text(row, 5), event.payload) &&
                              rows.text(row, 6) == event.dispatcher &&
                              same_json(rows.optional_text(row, 7), event.metadata, true) &&
                              (found ? revision == found->last_revision + 1
                                     : i == 0 && repeat_fits(request.expected, revision));
            if (!fits) throw DuplicateEventId(event.id, position);
            if (!found) found = AppendResult{position, position, revision, revision, true};
            found->last_position = position;
            found->last_revision = revision;
        }
        return found;
    }

    // JSON equality of a stored column and a pending text; with `empty_object`, NULL means `{}`.
    static bool same_json(std::optional<std::string_view> stored, const std::optional<std::string>& text,
                          bool empty_object = false) {
        const auto as_json = [&](std::optional<std::string_view> value) -> std::optional<nlohmann::json> {
            if (!value) return empty_object ? std::optional{nlohmann::json::object()} : std::nullopt;
            return nlohmann::json::parse(value->begin(), value->end(), nullptr, false);
        };
        return as_json(stored) ==
               as_json(text ? std::optional<std::string_view>{*text} : std::optional<std::string_view>{});
    }

    std::string channel_;
    std::shared_ptr<HeadNotifier> notifier_;
    Statements sql_;
};

}  // namespace krmx::detail
