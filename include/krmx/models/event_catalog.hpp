#pragma once
// EventCatalog: a named, revisioned set of event types (the same `krmx::EventType<P>` the game code uses),
// the one place where stored records become typed events. Decoding never throws for bad data: an unknown
// type or a payload that does not fit is reported as such, so a model can say what it skipped.
//
// Upcasting: a payload shape that changes gets a schema version, declared where the type is:
// `krmx::EventType<Book>{"book.added", 2}`. Every writer records the version it wrote in `metadata["schema"]`
// (no member means version 1) from that declaration: `EventCatalog::encode` and `stamp` (direct appends),
// write models (through `encode`), and durable domains (from their model), so an event written in the
// current shape is never upcast. `upcast(type, fn)` registers one step, oldest first; a type at version n
// with k steps reads versions n - k to n. At decode time a stored payload goes through every step from its
// version up to the current one, for catch-up and live events alike, before it is converted to the payload
// type.

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

/// A stored event decoded by a catalog: the record (position, stream, revision, ...) and the typed payload.
class CatalogEvent {
  public:
    CatalogEvent() = default;
    CatalogEvent(RecordedEvent record, detail::PayloadBox payload)
        : record_(std::move(record)), payload_(std::move(payload)) {}

    [[nodiscard]] const RecordedEvent& record() const noexcept { return record_; }
    [[nodiscard]] std::string_view type() const noexcept { return record_.type; }
    [[nodiscard]] Position position() const noexcept { return record_.position; }
    [[nodiscard]] std::string_view stream() const noexcept { return record_.stream; }
    [[nodiscard]] std::string_view dispatcher() const noexcept { return record_.dispatcher; }

    template <class P>
    [[nodiscard]] bool is(const EventType<P>& type) const noexcept {
        return record_.type == type.name() && payload_.template get_if<P>() != nullptr;
    }
    /// The typed payload when this is an event of `type`, else nullptr: `if (auto* b = e.payload_if(added))`.
    template <class P>
    [[nodiscard]] const P* payload_if(const EventType<P>& type) const noexcept {
        return record_.type == type.name() ? payload_.template get_if<P>() : nullptr;
    }
    /// The payload after upcasting, as JSON (null for an event type without payload).
    [[nodiscard]] nlohmann::json payload_json() const { return payload_.to_json(); }
    /// The event in wire form `{"type":..., "payload"?:...}`, after upcasting.
    [[nodiscard]] nlohmann::json event_json() const {
        nlohmann::json j = nlohmann::json::object();
        j["type"] = record_.type;
        if (payload_.ops() != nullptr && payload_.ops()->has_payload) j["payload"] = payload_json();
        return j;
    }
    // For adapters that hand the payload to StreamModel handlers without a JSON round trip.
    [[nodiscard]] const detail::PayloadBox& payload_box() const noexcept { return payload_; }

  private:
    RecordedEvent record_;
    detail::PayloadBox payload_;
};

/// What happened to a record handed to `EventCatalog::decode`.
enum class DecodeStatus : std::uint8_t {
    decoded,          ///< a typed event of the catalog
    unknown_type,     ///< the catalog has no event type of that name
    invalid_payload,  ///< the payload (after upcasting) does not convert, or an upcaster failed
};

[[nodiscard]] constexpr std::string_view to_string(DecodeStatus status) noexcept {
    switch (status) {
        case DecodeStatus::decoded:
            return "decoded";
        case DecodeStatus::unknown_type:
            return "unknown_type";
        case DecodeStatus::invalid_payload:
            return "invalid_payload";
    }
    return "unknown";
}

struct [[nodiscard]] DecodeResult {
    DecodeStatus status = DecodeStatus::decoded;
    CatalogEvent event;  ///< meaningful when decoded; otherwise only `event.record()` is
    std::string reason;  ///< why it did not decode

    [[nodiscard]] bool decoded() const noexcept { return status == DecodeStatus::decoded; }
};

/// Turns a payload of one schema version into the next.
using Upcaster = std::function<nlohmann::json(nlohmann::json payload)>;

namespace detail {
struct CatalogEntry {
    std::string name;
    std::uint32_t version = 1;  // what the type writes (its EventType's schema)
    const PayloadOps* ops = nullptr;
    std::string (*describe_error)(const nlohmann::json&, std::string_view) = nullptr;
    std::vector<Upcaster> upcasters;  // the last one turns version - 1 into version, the one before ...

    [[nodiscard]] std::uint32_t current_version() const noexcept { return version; }
    [[nodiscard]] std::uint32_t oldest_readable() const noexcept {
        return version - static_cast<std::uint32_t>(upcasters.size());
    }
};
}  // namespace detail

/// Thrown when a catalog is defined in a way that can never work (a type added twice, an upcaster for a
/// type the catalog does not hold, an event encoded with a type it does not hold).
struct CatalogError : std::logic_error {
    using std::logic_error::logic_error;
};

/// A named, revisioned set of event types. Bump the revision whenever the meaning of stored events changes
/// for readers: checkpoints made under another revision are discarded and the models replay.
/// Cheap to copy (the definition is shared); registering on a shared catalog copies it first.
class EventCatalog {
  public:
    EventCatalog(std::string name, std::uint32_t revision)
        : data_(std::make_shared<Data>(Data{std::move(name), revision, {}, {}})) {}

    /// Adds an event type. Throws CatalogError when a type of that name is in the catalog already.
    template <class P>
    EventCatalog& add(const EventType<P>& type) & {
        static_assert(detail::check_payload<P>());
        if (find(type.name()) != nullptr) {
            throw CatalogError("krmx::EventCatalog '" + data_->name + "': event type '" +
                               std::string{type.name()} + "' is added twice");
        }
        own();
        detail::CatalogEntry entry{std::string{type.name()}, type.schema(), &detail::payload_ops<P>,
                                   &detail::describe_payload_error<P>, {}};
        data_->index.emplace(entry.name, data_->entries.size());
        data_->entries.push_back(std::move(entry));
        return *this;
    }
    template <class P>
    EventCatalog&& add(const EventType<P>& type) && {
        return std::move(add(type));
    }

    /// Registers one upcasting step of `type`, oldest first: with k steps, a type declared at schema version
    /// n reads versions n - k to n (the last step turns n - 1 into n). Throws CatalogError when the type is
    /// not in the catalog, or when it would have more steps than versions below its own.
    template <class P>
    EventCatalog& upcast(const EventType<P>& type, Upcaster step) & {
        own();
        auto* entry = const_cast<detail::CatalogEntry*>(find(type.name()));
        if (entry == nullptr) {
            throw CatalogError("krmx::EventCatalog '" + data_->name + "': upcaster for event type '" +
                               std::string{type.name()} + "', which is not in the catalog");
        }
        if (entry->upcasters.size() + 1 >= entry->version) {
            throw CatalogError("krmx::EventCatalog '" + data_->name + "': event type '" + entry->name +
                               "' is declared at schema version " + std::to_string(entry->version) +
                               ", so it takes at most " + std::to_string(entry->version - 1) +
                               " upcasters; declare its new version where the type is defined, e.g. "
                               "krmx::EventType<Payload>{\"" +
                               entry->name + "\", " + std::to_string(entry->version + 1) + "}");
        }
        entry->upcasters.push_back(std::move(step));
        return *this;
    }
    template <class P>
    EventCatalog&& upcast(const EventType<P>& type, Upcaster step) && {
        return std::move(upcast(type, std::move(step)));
    }

    [[nodiscard]] const std::string& name() const noexcept { return data_->name; }
    [[nodiscard]] std::uint32_t revision() const noexcept { return data_->revision; }
    [[nodiscard]] bool contains(std::string_view type) const { return find(type) != nullptr; }
    [[nodiscard]] std::size_t size() const noexcept { return data_->entries.size(); }
    /// The schema version events of `type` are written with (0 when the type is unknown).
    [[nodiscard]] std::uint32_t schema_version(std::string_view type) const {
        const auto* entry = find(type);
        return entry == nullptr ? 0 : entry->current_version();
    }
    /// The names, in the order they were added.
    [[nodiscard]] std::vector<std::string_view> event_types() const {
        std::vector<std::string_view> names;
        for (const auto& entry : data_->entries) names.emplace_back(entry.name);
        return names;
    }

    /// A typed event as a NewEvent for a store, stamped with its schema version.
    template <class P>
    [[nodiscard]] NewEvent encode(const TypedEvent<P>& event, std::string_view dispatcher = {}) const {
        const auto* entry = find(event.type);
        if (entry == nullptr) {
            throw CatalogError("krmx::EventCatalog '" + data_->name + "': cannot encode event type '" +
                               std::string{event.type} + "', which is not in the catalog");
        }
        NewEvent out;
        out.type = std::string{event.type};
        if constexpr (!std::is_same_v<P, NoPayload>) out.payload = nlohmann::json(event.payload);
        out.dispatcher = std::string{dispatcher};
        out.metadata = nlohmann::json::object();
        out.metadata[std::string{schema_metadata_key}] = entry->current_version();
        return out;
    }

    /// A hand-made record for a store, stamped with its type's current schema version: for direct appends
    /// of events in the current shape (`store.append(stream, expected, catalog.stamp(record))`). Throws
    /// CatalogError when the type is not in the catalog.
    [[nodiscard]] NewEvent stamp(NewEvent event) const {
        const auto* entry = find(event.type);
        if (entry == nullptr) {
            throw CatalogError("krmx::EventCatalog '" + data_->name + "': cannot stamp event type '" +
                               event.type + "', which is not in the catalog");
        }
        if (!event.metadata.is_object()) event.metadata = nlohmann::json::object();
        event.metadata[std::string{schema_metadata_key}] = entry->current_version();
        return event;
    }

    /// Decodes a stored record: upcasts its payload to the current schema and converts it to the type's
    /// payload type. Never throws for bad data; says what went wrong instead.
    [[nodiscard]] DecodeResult decode(RecordedEvent record) const {
        DecodeResult result;
        const auto* entry = find(record.type);
        if (entry == nullptr) {
            result.status = DecodeStatus::unknown_type;
            result.reason = "unknown event type '" + record.type + "' (not in catalog '" + data_->name + "')";
            result.event = CatalogEvent{std::move(record), {}};
            return result;
        }
        try {
            std::optional<nlohmann::json> payload = record.payload;
            const std::uint32_t version = stored_schema_version(record.metadata);
            if (version < entry->oldest_readable() || version > entry->current_version()) {
                return invalid(std::move(record), "event type '" + entry->name + "' has schema version " +
                                                      std::to_string(version) + ", this catalog reads " +
                                                      std::to_string(entry->oldest_readable()) + " to " +
                                                      std::to_string(entry->current_version()));
            }
            const std::size_t skipped = entry->upcasters.size() - (entry->current_version() - version);
            for (std::size_t step = skipped; step < entry->upcasters.size(); ++step) {
                payload = entry->upcasters[step](payload ? std::move(*payload) : nlohmann::json{});
            }
            detail::PayloadBox box;
            if (!entry->ops->has_payload) {
                if (payload && !payload->is_null()) {
                    return invalid(std::move(record), "event type '" + entry->name +
                                                          "' takes no payload, got " +
                                                          detail::json_kind(*payload));
                }
                box = detail::PayloadBox::make(NoPayload{});
            } else if (!payload) {
                return invalid(std::move(record),
                               "payload: missing (event type '" + entry->name + "' needs a payload)");
            } else {
                try {
                    box = detail::PayloadBox::from_json(*entry->ops, *payload);
                } catch (const std::exception& e) {
                    return invalid(std::move(record), entry->describe_error(*payload, e.what()));
                }
            }
            result.event = CatalogEvent{std::move(record), std::move(box)};
            return result;
        } catch (const std::exception& e) {
            return invalid(std::move(record),
                           "upcasting '" + entry->name + "' failed: " + std::string{e.what()});
        }
    }

  private:
    struct Data {
        std::string name;
        std::uint32_t revision;
        std::vector<detail::CatalogEntry> entries;
        std::unordered_map<std::string, std::size_t, detail::StringHash, std::equal_to<>> index;
    };

    static DecodeResult invalid(RecordedEvent record, std::string reason) {
        DecodeResult result;
        result.status = DecodeStatus::invalid_payload;
        result.reason = std::move(reason);
        result.event = CatalogEvent{std::move(record), {}};
        return result;
    }

    [[nodiscard]] const detail::CatalogEntry* find(std::string_view type) const {
        const auto it = data_->index.find(type);
        return it == data_->index.end() ? nullptr : &data_->entries[it->second];
    }
    void own() {
        if (data_.use_count() > 1) data_ = std::make_shared<Data>(*data_);
    }

    std::shared_ptr<Data> data_;
};

}  // namespace krmx
