#pragma once
// What a payload type must offer: a value that nlohmann/json converts both ways.

#include <concepts>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "krmx/core/json_optional.hpp"

namespace krmx {

/// The payload of an event type without payload (`EventType<>`). On the wire the event has no
/// `payload` member at all: `{"type":"claim"}`.
struct NoPayload {
    friend constexpr bool operator==(NoPayload, NoPayload) noexcept { return true; }
};

/// A payload type: copyable, and converted to and from JSON by nlohmann/json (std types, std::optional,
/// ADL `to_json`/`from_json`, or the NLOHMANN_DEFINE_TYPE_* macros).
template <class P>
concept Payload = std::same_as<P, NoPayload> ||
    (std::is_object_v<P>&& std::copy_constructible<P> && !std::is_const_v<P> &&
     requires(const P& p, const nlohmann::json& j) {
         nlohmann::json(p);
         j.template get<P>();
     });

namespace detail {
template <class P>
constexpr bool check_payload() {
    static_assert(std::is_object_v<P> && !std::is_const_v<P> && !std::is_reference_v<P>,
                  "krmx: a payload type must be a plain (non-const, non-reference) object type");
    static_assert(std::copy_constructible<P>, "krmx: a payload type must be copy constructible");
    static_assert(Payload<P>,
                  "krmx: the payload type does not convert to and from nlohmann::json. Give it ADL "
                  "to_json/from_json functions, or use NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Type, members...)");
    return true;
}

// Arithmetic payloads refuse narrowing (increment(3.5) for an int payload does not compile).
template <class U, class P>
concept converts_without_narrowing = std::convertible_to<U, P> &&
    (!(std::is_arithmetic_v<std::remove_cvref_t<U>> && std::is_arithmetic_v<P>) ||
     requires(U && u) { P{static_cast<U&&>(u)}; });
}  // namespace detail

}  // namespace krmx
