// A consumer of the installed package: the README's example, built three ways by the packaging test.
#include <cstdio>
#include <optional>
#include <string>

#include <krmx/krmx.hpp>

struct Counter {
    int counter = 0;
    std::optional<std::string> claim;
};

inline constexpr krmx::EventType<int> increment{"increment"};
inline constexpr krmx::EventType<> claim{"claim"};

int main() {
    const auto model = krmx::StreamModel<Counter>{}
                           .when(increment,
                                 [](Counter& s, std::string_view by, int n) {
                                     if (s.claim && *s.claim != by)
                                         throw krmx::Rejected{"claimed by someone else"};
                                     s.counter += n;
                                 })
                           .when(claim, [](Counter& s, std::string_view by) {
                               if (s.claim) throw krmx::Rejected{"already claimed"};
                               s.claim = std::string{by};
                           });
    krmx::Stream<Counter> stream{model};
    (void)stream.dispatch("alice", increment(3));
    (void)stream.dispatch("alice", claim());
    const auto refused = stream.dispatch("bob", increment(1));
    (void)stream.dispatch("alice", nlohmann::json{{"type", "increment"}, {"payload", 2}});
    std::printf("counter=%d claim=%s refused=%s\n", stream.state().counter, stream.state().claim->c_str(),
                std::string{refused.reason()}.c_str());
    return refused.outcome() == krmx::Outcome::rejected ? 0 : 1;
}
