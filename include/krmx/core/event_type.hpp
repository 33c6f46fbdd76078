#pragma once
// Compile-time event types: `inline constexpr krmx::EventType<int> increment{"increment"};`
// and typed events made by calling them: `increment(3)`.

#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/payload.hpp"

namespace krmx {

template <class P>
class EventType;

/// An event made from an EventType: its name, the identity of the EventType that made it (a fast path
/// for finding its handler), and its typed payload. No JSON is involved until it is sent or stored.
template <class P>
struct TypedEvent {
    using payload_type = P;
    std::string_view type;      ///< the event type's name (static storage, like the EventType's)
    const void* key = nullptr;  ///< the address of the EventType that made it; only an optimisation
    P payload{};

    /// The wire form: `{"type":..., "payload":...}`, without `payload` when the type takes none.
    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json j = nlohmann::json::object();
        j["type"] = type;
        if constexpr (!std::is_same_v<P, NoPayload>) j["payload"] = payload;
        return j;
    }
    friend bool operator==(const TypedEvent& a, const TypedEvent& b) requires std::equality_comparable<P> {
        return a.type == b.type && a.payload == b.payload;
    }
};

template <class P>
void to_json(nlohmann::json& j, const TypedEvent<P>& event) {
    j = event.to_json();
}

/// A named event type with payload type P (`EventType<>` for events without payload).
/// Declare it `inline constexpr` in shared code; its name must outlive every event made from it
/// (a string literal does).
///
/// The schema version says which shape of the payload the type writes: 1 unless its payload changed shape
/// after events were stored; then declare the new version here, `EventType<Book>{"book.added", 2}`, and give
/// readers an upcaster from each older version (krmx::EventCatalog::upcast). Every writer records the
/// version from here (a durable domain from its model, write models and catalogs from the type), so no
/// writer can record the wrong one.
template <class P = NoPayload>
class EventType {
    static_assert(detail::check_payload<P>());

  public:
    using payload_type = P;

    /// `schema` must be at least 1 (a constant expression refuses 0 at compile time).
    constexpr explicit EventType(std::string_view name, std::uint32_t schema = 1) : name_(name), schema_(schema) {
        if (schema == 0) throw std::invalid_argument("krmx::EventType: schema versions start at 1");
    }

    [[nodiscard]] constexpr std::string_view name() const noexcept { return name_; }
    /// The schema version of the payload shape this type writes (1, 2, ...).
    [[nodiscard]] constexpr std::uint32_t schema() const noexcept { return schema_; }

    /// `increment(3)`. A payload of another type does not compile; arithmetic payloads refuse narrowing.
    template <class U>
    requires(!std::is_same_v<P, NoPayload> && detail::converts_without_narrowing<U, P>)
        [[nodiscard]] constexpr TypedEvent<P>
        operator()(U&& payload) const {
        return TypedEvent<P>{name_, this, P(std::forward<U>(payload))};
    }
    /// `claim()` for an event type without payload.
    [[nodiscard]] constexpr TypedEvent<P> operator()() const requires std::is_same_v<P, NoPayload> {
        return TypedEvent<P>{name_, this, NoPayload{}};
    }

  private:
    std::string_view name_;
    std::uint32_t schema_;
};

}  // namespace krmx
