#pragma once
// An event store in memory: for tests, tools and single-process games that need no durability.
// Thread-safe: appends are serialized, reads run concurrently. Subscription callbacks run on a thread
// owned by each subscription (see SubscriptionHandlers).

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "krmx/core/subscription.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class MemoryEventStore {
  public:
    MemoryEventStore() = default;
    MemoryEventStore(const MemoryEventStore&) = delete;
    MemoryEventStore& operator=(const MemoryEventStore&) = delete;
    ~MemoryEventStore() { subscriptions_.close(); }

    AppendResult append(std::string_view stream, ExpectedRevision expected,
                        std::span<const NewEvent> events) {
        detail::check_append(stream, events);  // also that the JSON could be written and read back as it is

        std::unique_lock lock{mutex_};
        if (auto repeat = find_repeat(stream, expected, events)) return *repeat;

        auto found = streams_.find(stream);
        const std::optional<Revision> actual =
            found == streams_.end() ? std::nullopt : std::optional<Revision>{found->second.size() - 1};
        if (!expected.matches(actual)) throw WrongExpectedRevision(std::string{stream}, expected, actual);

        // Straight into the log; a failure part way (allocation) takes back what was added, so that it
        // changes nothing.
        const Revision first_revision = actual ? *actual + 1 : 0;
        const Position first_position = events_.size() + 1;
        std::size_t recorded = 0;
        std::size_t indexed = 0;
        try {
            for (std::size_t i = 0; i < events.size(); ++i) {
                const NewEvent& event = events[i];
                events_.push_back(RecordedEvent{first_position + i, std::string{stream}, first_revision + i,
                                                event.id.empty() ? new_event_id() : event.id, event.type,
                                                event.payload, event.dispatcher, detail::stamped(event.timestamp),
                                                detail::normalized_metadata(event.metadata)});
                ++recorded;
            }
            if (found == streams_.end()) found = streams_.emplace(std::string{stream}, std::vector<Position>{}).first;
            for (; indexed < events.size(); ++indexed) {
                const RecordedEvent& record = events_[first_position - 1 + indexed];
                ids_.emplace(record.id, record.position);  // keyed by the record's own id: no copy
                found->second.push_back(record.position);
            }
        } catch (...) {
            for (std::size_t i = 0; i < indexed; ++i) {
                ids_.erase(events_[first_position - 1 + i].id);
                found->second.pop_back();
            }
            if (found != streams_.end() && found->second.empty()) streams_.erase(found);
            for (; recorded > 0; --recorded) events_.pop_back();
            throw;
        }
        const Position last_position = events_.size();
        subscriptions_.publish(last_position);
        return AppendResult{first_position, last_position, first_revision,
                            first_revision + events.size() - 1};
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected, const NewEvent& event) {
        return append(stream, expected, std::span<const NewEvent>{&event, 1});
    }

    [[nodiscard]] std::vector<RecordedEvent> read_stream(std::string_view stream, Revision from_revision = 0,
                                                         std::size_t max_count = read_unbounded) const {
        std::shared_lock lock{mutex_};
        std::vector<RecordedEvent> result;
        const auto found = streams_.find(stream);
        if (found == streams_.end()) return result;
        const auto& positions = found->second;
        for (std::size_t r = from_revision; r < positions.size() && result.size() < max_count; ++r) {
            result.push_back(events_[positions[r] - 1]);
        }
        return result;
    }

    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after_position = 0,
                                                      std::size_t max_count = read_unbounded,
                                                      const EventFilter& filter = {}) const {
        return read_range(after_position, read_unbounded, max_count, filter);
    }

    [[nodiscard]] std::optional<Revision> stream_revision(std::string_view stream) const {
        std::shared_lock lock{mutex_};
        const auto found = streams_.find(stream);
        if (found == streams_.end()) return std::nullopt;
        return found->second.size() - 1;
    }

    [[nodiscard]] Position head_position() const noexcept { return subscriptions_.head(); }

    /// Delivery happens on a thread owned by the subscription; cancel it through the returned handle.
    [[nodiscard]] Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                                         EventFilter filter = {}) {
        return subscriptions_.subscribe(from, std::move(handlers), std::move(filter));
    }

    /// What went wrong without an exception to say so (see StoreStatistics).
    [[nodiscard]] StoreStatistics statistics() const noexcept {
        return {.error_handler_failures = subscriptions_.error_handler_failures()};
    }

    /// Roughly the bytes held per event (record, strings, JSON nodes and indexes), for capacity planning.
    [[nodiscard]] std::size_t approximate_bytes_per_event() const {
        std::shared_lock lock{mutex_};
        if (events_.empty()) return 0;
        std::size_t bytes = 0;
        for (const auto& event : events_) {
            bytes += sizeof(RecordedEvent) + heap_bytes(event.stream) + heap_bytes(event.id) +
                     heap_bytes(event.type) + heap_bytes(event.dispatcher) + json_bytes(event.metadata) +
                     (event.payload ? json_bytes(*event.payload) : 0);
            bytes += sizeof(Position) + sizeof(std::pair<std::string_view, Position>) +
                     2 * sizeof(void*);  // stream index slot and id hash node
        }
        return bytes / events_.size();
    }

  private:
    static constexpr std::size_t subscription_batch = 256;

    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept {
            return std::hash<std::string_view>{}(text);
        }
    };
    template <class T>
    using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

    static std::size_t heap_bytes(const std::string& text) {
        return text.capacity() > std::string{}.capacity() ? text.capacity() + 1 : 0;
    }
    static std::size_t json_bytes(const nlohmann::json& value) {
        std::size_t bytes = 0;
        switch (value.type()) {
            case nlohmann::json::value_t::object:
                bytes += sizeof(nlohmann::json::object_t);
                for (const auto& [key, item] : value.items()) {
                    bytes += 4 * sizeof(void*) + sizeof(std::string) + key.size() + sizeof(nlohmann::json) +
                             json_bytes(item);
                }
                break;
            case nlohmann::json::value_t::array:
                bytes += sizeof(nlohmann::json::array_t);
                for (const auto& item : value) bytes += sizeof(nlohmann::json) + json_bytes(item);
                break;
            case nlohmann::json::value_t::string:
                bytes += sizeof(std::string) + heap_bytes(value.get_ref<const std::string&>());
                break;
            default:
                break;
        }
        return bytes;
    }

    // An append whose ids are all stored at the same stream and consecutive revisions, with the same
    // content, is a repeat: report where it landed. Any other use of a stored id is an error.
    std::optional<AppendResult> find_repeat(std::string_view stream, ExpectedRevision expected,
                                            std::span<const NewEvent> events) const {
        const RecordedEvent* first = nullptr;
        const RecordedEvent* previous = nullptr;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const NewEvent& event = events[i];
            const auto stored = event.id.empty() ? ids_.end() : ids_.find(event.id);
            if (stored == ids_.end()) {
                if (first == nullptr) continue;
                throw DuplicateEventId(first->id, first->position);  // partly repeated
            }
            const RecordedEvent& record = events_[stored->second - 1];
            const bool fits = record.stream == stream && detail::same_content(record, event) &&
                              (previous == nullptr ? detail::repeat_fits(expected, record.revision) && i == 0
                                                   : record.revision == previous->revision + 1);
            if (!fits) throw DuplicateEventId(record.id, record.position);
            if (first == nullptr) first = &record;
            previous = &record;
        }
        if (first == nullptr) return std::nullopt;
        return AppendResult{first->position, previous->position, first->revision, previous->revision, true};
    }

    std::vector<RecordedEvent> read_range(Position after, Position up_to, std::size_t max_count,
                                          const EventFilter& filter) const {
        std::shared_lock lock{mutex_};
        std::vector<RecordedEvent> result;
        const Position end = std::min<Position>(up_to, events_.size());
        for (Position p = after + 1; p <= end && result.size() < max_count; ++p) {
            const RecordedEvent& event = events_[p - 1];
            if (filter.empty() || filter.matches(event.stream, event.type)) result.push_back(event);
        }
        return result;
    }

    mutable std::shared_mutex mutex_;
    std::deque<RecordedEvent> events_;          // position p at index p - 1 (a deque: records never move)
    StringMap<std::vector<Position>> streams_;  // revision r at index r
    std::unordered_map<std::string_view, Position, StringHash> ids_;  // views of the records' ids
    detail::LocalSubscriptions subscriptions_{std::bind_front(&MemoryEventStore::read_range, this),
                                              subscription_batch};
};

static_assert(EventStore<MemoryEventStore>);

}  // namespace krmx
