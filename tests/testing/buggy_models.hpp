#pragma once
// Models with the classic bugs of game rules, for the test tools to catch. Each is small and looks right.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/event_type.hpp>
#include <krmx/core/outcome.hpp>
#include <krmx/stream/stream_model.hpp>

namespace buggy {

inline constexpr krmx::EventType<int> score{"score"};

/// A tally of points per player, and who leads.
struct Tally {
    std::map<std::string, int> points;
    std::string leader;
    long long stamp = 0;
    friend bool operator==(const Tally&, const Tally&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Tally, points, leader, stamp)

/// The leader is the player with the most points; a tie goes to the name first in order, or with
/// `last_of_best` to the last.
inline krmx::StreamModel<Tally> tally(bool last_of_best) {
    return krmx::StreamModel<Tally>{}.when(
        score,
        [](const Tally&, std::string_view, int n) { return n > 0 && n <= 10 ? krmx::allow() : krmx::refuse("1 to 10 points"); },
        [last_of_best](Tally& t, std::string_view by, int n) {
            t.points[std::string{by}] += n;
            for (const auto& [player, points] : t.points) {
                const int best = t.leader.empty() ? -1 : t.points.at(t.leader);
                if (points > best || (last_of_best && points == best)) t.leader = player;
            }
        });
}

/// Correct.
inline krmx::StreamModel<Tally> good_tally() { return tally(false); }

/// The good tally's rules with another tie-break (the last of the best leads): a client that runs these
/// against a server that runs good_tally() agrees on the points and disagrees on the leader.
inline krmx::StreamModel<Tally> other_tiebreak_tally() { return tally(true); }

/// Stamps each score with the wall clock: live and replayed states differ.
inline krmx::StreamModel<Tally> clock_tally() {
    return krmx::StreamModel<Tally>{}.when(score, [](Tally& t, std::string_view by, int n) {
        t.points[std::string{by}] += n;
        t.stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    });
}

/// Counts scores in a global: a replay counts on from where the live run ended.
inline krmx::StreamModel<Tally> global_tally() {
    return krmx::StreamModel<Tally>{}.when(score, [](Tally& t, std::string_view by, int n) {
        static long long scored = 0;
        t.points[std::string{by}] += n;
        t.stamp = ++scored;
    });
}

/// The points live behind a shared pointer, so copies of the state share them; the handler writes, then
/// refuses a score that is too high. A roll back restores the pointer, not what it points to.
struct SharedTally {
    std::shared_ptr<std::map<std::string, int>> points = std::make_shared<std::map<std::string, int>>();
};
inline void to_json(nlohmann::json& j, const SharedTally& t) { j = nlohmann::json{{"points", *t.points}}; }

inline krmx::StreamModel<SharedTally> shared_tally() {
    return krmx::StreamModel<SharedTally>{}.when(score, [](SharedTally& t, std::string_view by, int n) {
        (*t.points)[std::string{by}] += n;
        if (n > 10) throw krmx::Rejected{"at most 10 points"};
    });
}

/// The points in an unordered map, and the leader is the last of the best in its iteration order: what the
/// order of an unordered container is depends on its history, which its JSON does not hold.
struct HashTally {
    std::unordered_map<std::string, int> points;
    std::string leader;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HashTally, points, leader)

inline krmx::StreamModel<HashTally> hash_tally() {
    return krmx::StreamModel<HashTally>{}.when(score, [](HashTally& t, std::string_view by, int n) {
        t.points[std::string{by}] += n;
        int best = 0;
        for (const auto& [player, points] : t.points) {
            if (points >= best) {
                best = points;
                t.leader = player;
            }
        }
    });
}

}  // namespace buggy
