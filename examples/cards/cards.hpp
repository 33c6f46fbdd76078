#pragma once
// A card game with secrets, as shared game code on the projection model: each player holds a hand that only
// it sees; everyone sees the pile's top card, how many cards each player holds, and whose turn it is.
// Players sit down (`sit`), the server deals a shuffled deck (`deal`, dispatched by server code, so that
// the handlers stay deterministic: the shuffle happens before the action), and players take turns to play a
// card of the top card's suit or rank (`play`) or to draw one (`draw`). Who empties their hand first wins.
//
// Cards are numbers 0..51: suit = card / 13, rank = card % 13.

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/define_view.hpp>
#include <krmx/core/event_type.hpp>
#include <krmx/core/json_optional.hpp>  // the View's optional members
#include <krmx/core/outcome.hpp>
#include <krmx/stream/projection_model.hpp>
#include <krmx/stream/stream.hpp>

namespace cards {

/// The whole table: the server's, never sent.
struct Table {
    std::vector<std::string> seats;                      // in turn order
    std::map<std::string, std::vector<int>> hands;
    std::vector<int> deck;                               // face down; drawn from the back
    std::vector<int> pile;                               // face up; the top is the back
    std::size_t turn = 0;                                // index into seats
    std::optional<std::string> winner;
    bool dealt = false;
};

/// What one player (or a spectator, with an empty hand) sees.
struct Seat {
    std::vector<int> hand;                    // own cards only
    std::map<std::string, std::size_t> held;  // how many cards each seated player holds
    std::optional<int> top;                   // the pile's top card
    std::size_t deck = 0;                     // cards left to draw
    std::string turn;                         // whose turn it is ("" before the deal)
    std::optional<std::string> winner;
    friend bool operator==(const Seat&, const Seat&) = default;
};
KRMX_DEFINE_VIEW(Seat, hand, held, top, deck, turn, winner)  // JSON, and views written without a JSON tree

inline constexpr std::size_t max_players = 4;
inline constexpr std::size_t hand_size = 5;

inline constexpr krmx::EventType<> sit{"sit"};
inline constexpr krmx::EventType<std::vector<int>> deal{"deal"};
inline constexpr krmx::EventType<int> play{"play"};
inline constexpr krmx::EventType<> draw{"draw"};

[[nodiscard]] inline bool matches(int card, int top) { return card / 13 == top / 13 || card % 13 == top % 13; }

[[nodiscard]] inline Seat view(const Table& t, std::string_view user) {
    Seat s;
    if (const auto it = t.hands.find(std::string{user}); it != t.hands.end()) s.hand = it->second;
    for (const auto& [player, hand] : t.hands) s.held[player] = hand.size();
    if (!t.pile.empty()) s.top = t.pile.back();
    s.deck = t.deck.size();
    if (t.dealt && !t.winner) s.turn = t.seats[t.turn];
    s.winner = t.winner;
    return s;
}

[[nodiscard]] inline krmx::Verdict on_turn(const Table& t, std::string_view by) {
    if (!t.dealt) return krmx::refuse("not dealt yet");
    if (t.winner) return krmx::refuse("the game is over");
    if (t.seats[t.turn] != by) return krmx::refuse("not your turn");
    return krmx::allow();
}

inline const krmx::ProjectionModel<Table, Seat>& model() {
    static const auto m =
        krmx::ProjectionModel<Table, Seat>{Table{}, &view}
            .when(
                sit,
                [](const Table& t, std::string_view by) {
                    if (by == krmx::server_dispatcher) return krmx::refuse("the server does not play");
                    if (t.dealt) return krmx::refuse("the game has begun");
                    if (t.hands.contains(std::string{by})) return krmx::refuse("seated already");
                    if (t.seats.size() == max_players) return krmx::refuse("the table is full");
                    return krmx::allow();
                },
                [](Table& t, std::string_view by) {
                    t.seats.emplace_back(by);
                    t.hands[std::string{by}];
                })
            .when(
                deal,
                [](const Table& t, std::string_view by, const std::vector<int>& deck) {
                    if (by != krmx::server_dispatcher) return krmx::refuse("only the server deals");
                    if (t.dealt) return krmx::refuse("dealt already");
                    if (t.seats.size() < 2) return krmx::refuse("at least two players must sit");
                    auto sorted = deck;
                    std::sort(sorted.begin(), sorted.end());
                    for (std::size_t i = 0; i < sorted.size(); ++i) {
                        if (sorted[i] != static_cast<int>(i) || sorted.size() != 52) return krmx::refuse("not a deck");
                    }
                    return krmx::allow();
                },
                [](Table& t, std::string_view, const std::vector<int>& deck) {
                    t.deck = deck;
                    for (std::size_t round = 0; round < hand_size; ++round) {
                        for (const auto& player : t.seats) {
                            t.hands[player].push_back(t.deck.back());
                            t.deck.pop_back();
                        }
                    }
                    t.pile.push_back(t.deck.back());
                    t.deck.pop_back();
                    t.dealt = true;
                })
            .when(
                play,
                [](const Table& t, std::string_view by, const int& card) {
                    if (auto verdict = on_turn(t, by); !verdict.allowed()) return verdict;
                    const auto& hand = t.hands.at(std::string{by});
                    if (std::find(hand.begin(), hand.end(), card) == hand.end()) return krmx::refuse("not in your hand");
                    if (!matches(card, t.pile.back())) return krmx::refuse("does not match the top card");
                    return krmx::allow();
                },
                [](Table& t, std::string_view by, const int& card) {
                    auto& hand = t.hands.at(std::string{by});
                    hand.erase(std::find(hand.begin(), hand.end(), card));
                    t.pile.push_back(card);
                    if (hand.empty()) {
                        t.winner = std::string{by};
                    } else {
                        t.turn = (t.turn + 1) % t.seats.size();
                    }
                })
            .when(
                draw,
                [](const Table& t, std::string_view by) {
                    if (auto verdict = on_turn(t, by); !verdict.allowed()) return verdict;
                    if (t.deck.empty()) return krmx::refuse("the deck is empty");
                    return krmx::allow();
                },
                [](Table& t, std::string_view by) {
                    t.hands.at(std::string{by}).push_back(t.deck.back());
                    t.deck.pop_back();
                    t.turn = (t.turn + 1) % t.seats.size();
                })
            // A played card leaves the hand and tops the pile at once; the server's delta confirms it.
            .optimistic(play, [](Seat& s, std::string_view, const int& card) {
                const auto it = std::find(s.hand.begin(), s.hand.end(), card);
                if (it == s.hand.end()) throw krmx::Rejected("not in your hand");
                s.hand.erase(it);
                s.top = card;
            });
    return m;
}

}  // namespace cards
