#pragma once
// The alphabet, the starter game of Krmx, as shared game code (server and clients include this file).
// The players share a string of letters. `extend` appends the next letter, up to z. Whoever `claim`s the
// alphabet is the only one who may extend it until they `release` it, and the only one who may `reset` it.
//
// A reducer to copy: a state, one EventType per action, and a model registering a guard (may refuse, never
// writes, so a refusal costs nothing) and a handler (applies what the guard allowed) per event type.

#include <optional>
#include <string>
#include <string_view>

#include <krmx/krmx.hpp>

struct Alphabet {
    std::string letters;               // "", "a", "ab", ... up to the whole alphabet
    std::optional<std::string> claim;  // who holds the claim, if anyone
    friend bool operator==(const Alphabet&, const Alphabet&) = default;
};

namespace alphabet {

inline constexpr krmx::EventType<> extend{"extend"};
inline constexpr krmx::EventType<> claim{"claim"};
inline constexpr krmx::EventType<> release{"release"};
inline constexpr krmx::EventType<> reset{"reset"};

/// The model, built once on first use (safe from any translation unit, at any time).
inline const krmx::StreamModel<Alphabet>& model() {
    static const auto m =
        krmx::StreamModel<Alphabet>{}
            .when(
                extend,
                [](const Alphabet& s, std::string_view by) {
                    if (s.claim && *s.claim != by) return krmx::refuse("claimed by someone else");
                    if (!s.letters.empty() && s.letters.back() == 'z')
                        return krmx::refuse("the alphabet is complete");
                    return krmx::allow();
                },
                [](Alphabet& s, std::string_view) {
                    s.letters += s.letters.empty() ? 'a' : static_cast<char>(s.letters.back() + 1);
                })
            .when(
                claim,
                [](const Alphabet& s, std::string_view) {
                    return s.claim ? krmx::refuse("already claimed") : krmx::allow();
                },
                [](Alphabet& s, std::string_view by) { s.claim = std::string{by}; })
            .when(
                release,
                [](const Alphabet& s, std::string_view by) {
                    return s.claim == by ? krmx::allow() : krmx::refuse("claimed by someone else");
                },
                [](Alphabet& s, std::string_view) { s.claim.reset(); })
            .when(
                reset,
                [](const Alphabet& s, std::string_view by) {
                    return s.claim == by ? krmx::allow() : krmx::refuse("only the claimer can reset");
                },
                [](Alphabet& s, std::string_view) { s.letters.clear(); });
    return m;
}

}  // namespace alphabet
