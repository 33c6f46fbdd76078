#pragma once
// krmx::SnapshotState: a state that can be saved and loaded as JSON, for snapshots (store/snapshot.hpp).
// nlohmann's `to_json` / `from_json`, found by ADL next to the type (or an `adl_serializer`), the way
// nlohmann users already customise their types:
//
//   struct Board { std::vector<int> cells; };
//   void to_json(nlohmann::json& j, const Board& b) { j = b.cells; }
//   void from_json(const nlohmann::json& j, Board& b) { j.get_to(b.cells); }

#include <concepts>

#include <nlohmann/json.hpp>

namespace krmx {

template <class State>
concept SnapshotState = std::copy_constructible<State> && requires(const State& state, const nlohmann::json& j) {
    nlohmann::json(state);
    { j.template get<State>() } -> std::same_as<State>;
};

}  // namespace krmx
