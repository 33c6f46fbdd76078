#pragma once
// Log: the append-only record of accepted events, in order, with 0-based positions. Entries keep their
// typed payloads (no JSON on the typed path); JSON is produced only when asked for.
// Memory: 48 bytes per event for payloads up to 32 bytes (ints, short strings, small structs), plus
// the payload's own heap for larger ones; dispatcher names are stored once each. Past 2 MiB the records
// live in huge pages where the system has them (detail::LargeAllocator): a replay of a long log is not
// slowed down by page faults.
// Window: a durable domain keeps only a tail in memory (older events are in its store), so a log may start
// at a `base()` position other than 0. Positions stay absolute: entries [base(), size()) are held.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/large_allocator.hpp"
#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/detail/short_equal.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

namespace detail {

struct LogRecord {
    PayloadBox payload;
    std::uint32_t type_index;
    std::uint32_t dispatcher;

    LogRecord(PayloadBox&& p, std::uint32_t type, std::uint32_t by) noexcept
        : payload(std::move(p)), type_index(type), dispatcher(by) {}
    template <class P>
    requires(!std::same_as<P, PayloadBox>) LogRecord(const P& p, std::uint32_t type, std::uint32_t by)
        : payload(PayloadBox::make(p)), type_index(type), dispatcher(by) {}
};

// Dispatcher names, each stored once. Consecutive events by the same dispatcher skip the hash lookup.
class NameTable {
  public:
    std::uint32_t intern(std::string_view name) {
        // Consecutive events by one dispatcher skip the hash lookup.
        if (!names_.empty() && short_equal(name, last_name_)) return last_;
        return intern_slow(name);
    }
    [[nodiscard]] std::string_view name(std::uint32_t id) const { return names_[id]; }
    void clear() {
        index_.clear();
        names_.clear();
        last_ = 0;
        last_name_ = {};
    }

  private:
    [[gnu::noinline]] std::uint32_t intern_slow(std::string_view name) {
        std::uint32_t id;
        if (auto it = index_.find(name); it != index_.end()) {
            id = it->second;
        } else {
            id = static_cast<std::uint32_t>(names_.size());
            names_.emplace_back(name);
            index_.emplace(names_.back(), id);  // deque elements never move: the view stays valid
        }
        last_name_ = names_[id];
        return last_ = id;
    }

    std::deque<std::string> names_;
    std::unordered_map<std::string_view, std::uint32_t> index_;
    std::uint32_t last_ = 0;
    std::string_view last_name_;
};

}  // namespace detail

class Log;

/// A view of one accepted event. Valid while the log is not cleared.
class LogEntry {
  public:
    LogEntry(const Log& log, std::size_t position) noexcept : log_(&log), position_(position) {}

    [[nodiscard]] std::size_t position() const noexcept { return position_; }
    [[nodiscard]] std::string_view dispatcher() const;
    [[nodiscard]] std::string_view type() const;
    [[nodiscard]] bool has_payload() const;
    /// The payload as JSON (null when the type takes none).
    [[nodiscard]] nlohmann::json payload_json() const;
    /// The event in its wire form: `{"type":..., "payload"?:...}`.
    [[nodiscard]] nlohmann::json event_json() const;
    [[nodiscard]] Event event() const;
    /// The typed payload when this entry is an event of that C++ payload type and name, else nullptr.
    template <class P>
    [[nodiscard]] const P* payload_if(const EventType<P>& type) const;
    /// Same type and equal payload.
    [[nodiscard]] bool same_event(const LogEntry& other) const;

  private:
    [[nodiscard]] const detail::LogRecord& record() const;
    const Log* log_;
    std::size_t position_;
};

class Log {
  public:
    explicit Log(std::shared_ptr<const detail::ModelTypes> types) : types_(std::move(types)) {}

    /// The position the next event gets: every event ever appended, held or forgotten.
    [[nodiscard]] std::size_t size() const noexcept { return base_ + records_.size(); }
    /// The first position held (0 unless older events were forgotten).
    [[nodiscard]] std::size_t base() const noexcept { return base_; }
    /// How many events are held: size() - base().
    [[nodiscard]] std::size_t held() const noexcept { return records_.size(); }
    [[nodiscard]] bool empty() const noexcept { return records_.empty(); }
    [[nodiscard]] LogEntry operator[](std::size_t position) const noexcept {
        return LogEntry{*this, position};
    }
    [[nodiscard]] LogEntry at(std::size_t position) const {
        if (position < base_ || position >= size()) {
            throw std::out_of_range("krmx::Log::at: position " + std::to_string(position) + " is not held (" +
                                    std::to_string(base_) + " to " + std::to_string(size()) + ")");
        }
        return (*this)[position];
    }
    [[nodiscard]] LogEntry back() const {
        if (records_.empty()) throw std::out_of_range("krmx::Log::back: no event is held");
        return (*this)[size() - 1];
    }

    class iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = LogEntry;
        using difference_type = std::ptrdiff_t;
        using reference = LogEntry;
        using pointer = void;
        iterator() = default;
        iterator(const Log* log, std::size_t i) noexcept : log_(log), i_(i) {}
        LogEntry operator*() const noexcept { return (*log_)[i_]; }
        iterator& operator++() noexcept {
            ++i_;
            return *this;
        }
        iterator operator++(int) noexcept {
            auto copy = *this;
            ++i_;
            return copy;
        }
        friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }

      private:
        const Log* log_ = nullptr;
        std::size_t i_ = 0;
    };
    [[nodiscard]] iterator begin() const noexcept { return {this, base_}; }
    [[nodiscard]] iterator end() const noexcept { return {this, size()}; }

    /// All held events in wire form with their dispatchers: `[{"dispatcher":..., "event":{...}}, ...]`.
    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json out = nlohmann::json::array();
        for (const LogEntry entry : *this) {
            out.push_back({{"dispatcher", entry.dispatcher()}, {"event", entry.event_json()}});
        }
        return out;
    }

    // For streams: append an accepted event, read the raw record, start over.
    void append(std::uint32_t type_index, std::string_view dispatcher, detail::PayloadBox&& payload) {
        const auto id = dispatchers_.intern(dispatcher);
        records_.emplace_back(std::move(payload), type_index, id);
    }
    /// Copies a typed payload straight into its place in the log.
    template <class P>
    requires(!std::same_as<P, detail::PayloadBox>) void append(std::uint32_t type_index,
                                                               std::string_view dispatcher,
                                                               const P& payload) {
        const auto id = dispatchers_.intern(dispatcher);
        records_.emplace_back(payload, type_index, id);
    }
    [[nodiscard]] const detail::LogRecord& record(std::size_t position) const noexcept {
        return records_[position - base_];
    }
    [[nodiscard]] std::string_view dispatcher_name(std::uint32_t id) const { return dispatchers_.name(id); }
    [[nodiscard]] std::string_view type_name(std::uint32_t type_index) const {
        return types_->names[type_index];
    }
    void clear() noexcept { clear_at(0); }
    /// Empty, the next event at `position` (a stream restored from a snapshot at that position).
    void clear_at(std::size_t position) noexcept {
        records_.clear();
        dispatchers_.clear();
        base_ = position;
    }
    /// Lets go of the events before `position` (clamped to the held ones): they are stored elsewhere.
    void forget_before(std::size_t position) {
        if (position <= base_) return;
        const std::size_t n = std::min(position, size()) - base_;
        records_.erase(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(n));
        base_ += n;
    }
    /// Takes back the newest record (an event whose storage failed). Its dispatcher name stays interned.
    void pop_back() noexcept { records_.pop_back(); }
    void reserve(std::size_t n) { records_.reserve(n); }

  private:
    std::shared_ptr<const detail::ModelTypes> types_;
    std::vector<detail::LogRecord, detail::LargeAllocator<detail::LogRecord>> records_;
    std::size_t base_ = 0;  // the position of records_[0]
    detail::NameTable dispatchers_;
};

inline const detail::LogRecord& LogEntry::record() const {
    return log_->record(position_);
}
inline std::string_view LogEntry::dispatcher() const {
    return log_->dispatcher_name(record().dispatcher);
}
inline std::string_view LogEntry::type() const {
    return log_->type_name(record().type_index);
}
inline bool LogEntry::has_payload() const {
    return record().payload.ops()->has_payload;
}
inline nlohmann::json LogEntry::payload_json() const {
    return record().payload.to_json();
}
inline nlohmann::json LogEntry::event_json() const {
    nlohmann::json j = nlohmann::json::object();
    j["type"] = type();
    if (has_payload()) j["payload"] = payload_json();
    return j;
}
inline Event LogEntry::event() const {
    Event e{std::string{type()}, std::nullopt};
    if (has_payload()) e.payload = payload_json();
    return e;
}
template <class P>
const P* LogEntry::payload_if(const EventType<P>& type) const {
    return this->type() == type.name() ? record().payload.template get_if<P>() : nullptr;
}
inline bool LogEntry::same_event(const LogEntry& other) const {
    return type() == other.type() && record().payload.equals(other.record().payload);
}

}  // namespace krmx
