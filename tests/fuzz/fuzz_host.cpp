// The server's message entry point, as a network transport drives it: any bytes from a linked user, read by
// the production session (the hub's server) and routed by the host to the domain. Nothing may escape the
// callback, and whatever the server accepts a C++ client reads the same way, live and (for a late joiner)
// in the history.
#include <cstddef>
#include <cstdint>
#include <string>

#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "claimable_counter/counter.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    krmx::testing::Hub hub{{.host = {.max_message_bytes = 1 << 16}}};
    krmx::StreamDomain server{hub, "counter", counter::model(), {.max_event_bytes = 1 << 14}};
    auto& bob_connection = hub.connect("bob");
    krmx::StreamClient bob{bob_connection, "counter", counter::model()};
    bob_connection.link();
    auto& mallory = hub.connect("mallory");
    mallory.link();
    hub.run_until_idle();
    try {
        mallory.send(std::string{reinterpret_cast<const char*>(data), size});
        hub.run_until_idle();
    } catch (...) {
        KRMX_FUZZ_CHECK(!"an exception escaped the server or the client");
    }
    KRMX_FUZZ_CHECK(bob.synced());
    KRMX_FUZZ_CHECK(bob.confirmed_size() == server.size());
    KRMX_FUZZ_CHECK(bob.confirmed_state() == server.state());
    KRMX_FUZZ_CHECK(bob.statistics().divergent == 0 && bob.statistics().ignored == 0);
    if (server.size() > 0) {
        auto& late_connection = hub.connect("late");
        krmx::StreamClient late{late_connection, "counter", counter::model()};
        late_connection.link();
        hub.run_until_idle();
        KRMX_FUZZ_CHECK(late.synced() && late.confirmed_state() == server.state());
        KRMX_FUZZ_CHECK(late.statistics().divergent == 0 && late.statistics().ignored == 0);
    }
    return 0;
}
