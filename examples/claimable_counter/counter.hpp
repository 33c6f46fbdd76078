#pragma once
// The claimable counter of Krmx State, as shared game code: included by the server and by every client.
// Anyone may increment the counter until someone claims it; then only the claimer may, until released.

#include <limits>
#include <optional>
#include <string>
#include <string_view>

// Shared game code needs only the model: servers and clients include what they run it in.
#include <krmx/core/event_type.hpp>
#include <krmx/core/outcome.hpp>
#include <krmx/stream/stream_model.hpp>
#include <nlohmann/json.hpp>

struct Counter {
    int counter = 0;
    std::optional<std::string> claim;
    friend bool operator==(const Counter&, const Counter&) = default;
};

// Its JSON, for snapshots (`counter::model().snapshots(1)` copies the model with snapshots on): found by
// ADL, as nlohmann users write them. An unclaimed counter has no "claim" member.
inline void to_json(nlohmann::json& j, const Counter& c) {
    j = {{"counter", c.counter}};
    if (c.claim) j["claim"] = *c.claim;
}
inline void from_json(const nlohmann::json& j, Counter& c) {
    j.at("counter").get_to(c.counter);
    c.claim.reset();
    if (const auto claim = j.find("claim"); claim != j.end()) c.claim = claim->get<std::string>();
}

namespace counter {

inline constexpr krmx::EventType<int> increment{"increment"};
inline constexpr krmx::EventType<> claim{"claim"};
inline constexpr krmx::EventType<> release{"release"};

// Guards refuse without touching the state; handlers then apply what the guards allowed.
// The model works for any state that is a Counter (benchmarks add a large member to it).
template <class State = Counter>
const krmx::StreamModel<State>& model() {
    static const auto m =
        krmx::StreamModel<State>{}
            .when(
                increment,
                [](const Counter& s, std::string_view by, int n) {
                    if (s.claim && *s.claim != by) return krmx::refuse("claimed by someone else");
                    // Players send whatever they like: a game refuses what it cannot represent.
                    using limits = std::numeric_limits<int>;
                    if (n > 0 ? s.counter > limits::max() - n : s.counter < limits::min() - n)
                        return krmx::refuse("counter would overflow");
                    return krmx::allow();
                },
                [](Counter& s, std::string_view, int n) { s.counter += n; })
            .when(
                claim,
                [](const Counter& s, std::string_view) {
                    return s.claim ? krmx::refuse("already claimed") : krmx::allow();
                },
                [](Counter& s, std::string_view by) { s.claim = std::string{by}; })
            .when(
                release,
                [](const Counter& s, std::string_view by) {
                    return s.claim == by ? krmx::allow() : krmx::refuse("claimed by someone else");
                },
                [](Counter& s, std::string_view) { s.claim.reset(); });
    return m;
}

// The model with snapshots on (revision 1 of Counter's JSON above): a durable domain of it saves snapshots
// when its journal keeps them, and C++ clients far behind join from one.
inline const krmx::StreamModel<Counter>& model_with_snapshots() {
    static const auto m = [] {
        auto copy = model();
        copy.snapshots(1);
        return copy;
    }();
    return m;
}

}  // namespace counter
