// The alphabet, the starter game of Krmx, played by two players through krmx::testing::Hub.
#include <chrono>
#include <cstdio>
#include <string>

#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "alphabet.hpp"

using namespace std::chrono_literals;

namespace {
std::string show(const Alphabet& s) {
    return "\"" + s.letters + "\" claim=" + (s.claim ? *s.claim : std::string{"nobody"});
}
}  // namespace

int main() {
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, "alphabet", alphabet::model()};

    auto& ann_connection = hub.connect("ann", 15ms);
    auto& ben_connection = hub.connect("ben", 45ms);
    krmx::StreamClient ann{ann_connection, "alphabet", alphabet::model()};
    krmx::StreamClient ben{ben_connection, "alphabet", alphabet::model()};
    auto report =
        ben.on_invalidated([](std::uint64_t id, const nlohmann::json& event, std::string_view reason) {
            std::printf("  ben's #%llu %s was invalidated: %.*s\n", static_cast<unsigned long long>(id),
                        event.dump().c_str(), static_cast<int>(reason.size()), reason.data());
        });
    ann_connection.link();
    ben_connection.link();
    hub.run_until_idle();

    auto show_all = [&](const char* what) {
        std::printf("%-44s server %-22s ann %-22s ben %s\n", what, show(server.state()).c_str(),
                    show(ann.state()).c_str(), show(ben.state()).c_str());
    };
    for (int i = 0; i < 3; ++i) (void)ann.dispatch(alphabet::extend());
    (void)ben.dispatch(alphabet::extend());
    show_all("ann extends 3x, ben 1x (optimistic)");
    hub.run_until_idle();
    show_all("all confirmed");

    (void)ann.dispatch(alphabet::claim());
    (void)ben.dispatch(alphabet::extend());  // ben has not heard of ann's claim yet
    hub.run_until_idle();
    show_all("ann claimed; ben's extend came too late");
    (void)ann.dispatch(alphabet::reset());
    (void)ann.dispatch(alphabet::extend());
    (void)ann.dispatch(alphabet::release());
    hub.run_until_idle();
    show_all("ann resets, extends, releases");

    const bool converged = ann.state() == server.state() && ben.state() == server.state() &&
                           ann.pending_count() == 0 && ben.pending_count() == 0 &&
                           server.state() == Alphabet{"a", std::nullopt};
    std::printf("%s\n", converged ? "converged" : "NOT CONVERGED");
    return converged ? 0 : 1;
}
