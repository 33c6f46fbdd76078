// The client's message entry point: any bytes from the server (a hostile or broken one). Nothing may
// escape, and once linked again to an honest server the client follows it exactly.
#include <cstddef>
#include <cstdint>
#include <string>

#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "claimable_counter/counter.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, "counter", counter::model()};
    (void)server.dispatch("alice", counter::increment(2));
    (void)server.dispatch("alice", counter::claim());
    auto& connection = hub.connect("bob");
    krmx::StreamClient bob{connection, "counter", counter::model()};
    connection.link();
    hub.run_until_idle();
    (void)bob.dispatch(counter::increment(1));  // a pending event for the forged messages to meet
    try {
        // Each line is one message, so that one input can forge a sequence.
        const std::string input{reinterpret_cast<const char*>(data), size};
        std::size_t start = 0;
        while (start <= input.size()) {
            const auto end = std::min(input.find('\n', start), input.size());
            bob.receive(std::string_view{input}.substr(start, end - start));
            start = end + 1;
        }
        hub.run_until_idle();
        connection.unlink();
        hub.run_until_idle();
        connection.link();
        (void)server.dispatch("alice", counter::increment(5));
        hub.run_until_idle();
    } catch (...) {
        KRMX_FUZZ_CHECK(!"an exception escaped the client");
    }
    KRMX_FUZZ_CHECK(bob.synced());
    KRMX_FUZZ_CHECK(bob.confirmed_state() == server.state() && bob.state() == server.state());
    return 0;
}
