// The claimable counter on an authoritative stream: alice and bob take turns, the stream decides.
#include <cstdio>
#include <string>

#include "counter.hpp"

namespace {
std::string show(const Counter& s) {
    return "counter=" + std::to_string(s.counter) + " claim=" + (s.claim ? *s.claim : std::string{"nobody"});
}

template <class Event>
void dispatch(krmx::Stream<Counter>& stream, const char* who, const char* what, const Event& event) {
    const auto result = stream.dispatch(who, event);
    std::printf("%-6s %-14s -> %-9s %-26s | %s\n", who, what, std::string{krmx::to_string(result.outcome())}.c_str(),
                std::string{result.reason()}.c_str(), show(stream.state()).c_str());
}
}  // namespace

int main() {
    krmx::Stream<Counter> stream{counter::model()};
    std::printf("krmx %s: the claimable counter on an authoritative stream\n\n", krmx::version_string);

    dispatch(stream, "alice", "increment(3)", counter::increment(3));
    dispatch(stream, "bob", "increment(1)", counter::increment(1));
    dispatch(stream, "alice", "claim()", counter::claim());
    dispatch(stream, "bob", "increment(2)", counter::increment(2));  // refused: alice holds the claim
    dispatch(stream, "bob", "claim()", counter::claim());            // refused: already claimed
    dispatch(stream, "bob", "release()", counter::release());        // refused: not his claim
    // An event as it arrives from the wire: parsed once, checked against the payload type.
    dispatch(stream, "bob", R"({"type":"increment","payload":"ten"})",
             nlohmann::json::parse(R"({"type":"increment","payload":"ten"})"));
    dispatch(stream, "alice", R"({"type":"increment","payload":1})",
             nlohmann::json::parse(R"({"type":"increment","payload":1})"));

    std::printf("\n%zu events accepted; the log:\n", stream.size());
    for (const auto entry : stream.log()) {
        std::printf("  %zu  %-6s %s\n", entry.position(), std::string{entry.dispatcher()}.c_str(),
                    entry.event_json().dump().c_str());
    }
    std::printf("final: %s\n", show(stream.state()).c_str());
    return stream.state() == Counter{5, "alice"} ? 0 : 1;
}
