// The C++ peers of the interop tests, a child of the net tests' program (tests/support/test_child.hpp:
// `krmx_net_tests --krmx-child krmx_net_interop_peer ROLE ...`, built with the tests instead of parsing Beast
// and krmx again): `server` (interop_server.cpp) and `client PORT USERNAME` (interop_client.cpp) for the Node
// tests, and `metrics FOLDER` (interop_metrics.cpp, where krmx::metrics is built) for the Prometheus parser's.
#include <filesystem>
#include <iostream>
#include <string_view>

#include "test_child.hpp"

namespace krmx_interop {

int interop_server();
int interop_client(int argc, char** argv);
#ifdef KRMX_INTEROP_METRICS
int interop_metrics(const std::filesystem::path& out);
#endif

int run(int argc, char** argv) {
    const std::string_view role = argc >= 2 ? argv[1] : "";
    if (role == "server" && argc == 2) return interop_server();
    if (role == "client") return interop_client(argc - 1, argv + 1);
#ifdef KRMX_INTEROP_METRICS
    if (role == "metrics" && argc == 3) return interop_metrics(argv[2]);
#endif
    std::cerr << "usage: interop_peer server | interop_peer client PORT USERNAME | interop_peer metrics FOLDER\n";
    return 2;
}

}  // namespace krmx_interop

KRMX_TEST_CHILD(krmx_net_interop_peer, krmx_interop::run);
