#pragma once
// For a store of your own: the input checks krmx's stores run before they touch their storage, so that
// your store refuses the same appends with the same words and finds nothing for the same impossible names
// (the event store contract, krmx/testing/event_store_contract.hpp, holds every store to both).
//
//   AppendResult MyStore::append(std::string_view stream, ExpectedRevision expected,
//                                std::span<const NewEvent> events) {
//       krmx::check_append(stream, events);   // throws krmx::InvalidAppend, names quoted and escaped
//       ...
//   }
//   std::vector<RecordedEvent> MyStore::read_all(Position after, std::size_t max, const EventFilter& filter) {
//       if (krmx::matches_nothing(filter)) return {};
//       ...
//   }

#include <span>
#include <string_view>

#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

/// Throws krmx::InvalidAppend unless the append is well formed: every name keeps the name rule (names.hpp),
/// payloads and metadata are JSON that reads back the same (finite numbers, valid UTF-8, at most
/// json_max_event_depth levels), and no event id repeats within the append. Call it before any I/O.
inline void check_append(std::string_view stream, std::span<const NewEvent> events) {
    detail::check_append(stream, events);
}

/// Whether an event can have `name` as its stream or type: a read of a name that cannot finds nothing.
[[nodiscard]] inline bool storable_name(std::string_view name) { return detail::storable_name(name); }

/// Whether `filter` names only streams, or only types, that no event can have: then it matches nothing.
[[nodiscard]] inline bool matches_nothing(const EventFilter& filter) { return detail::matches_nothing(filter); }

}  // namespace krmx
