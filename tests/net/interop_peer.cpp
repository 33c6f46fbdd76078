// The C++ peers of the interop tests in one program (one build of Beast's server and client code instead of
// three): `interop_peer server` (interop_server.cpp) and `interop_peer client PORT USERNAME`
// (interop_client.cpp) for the Node tests, and `interop_peer metrics FOLDER` (interop_metrics.cpp, where
// krmx::metrics is built) for the Prometheus parser's.
#include <filesystem>
#include <iostream>
#include <string_view>

int interop_server();
int interop_client(int argc, char** argv);
#ifdef KRMX_INTEROP_METRICS
int interop_metrics(const std::filesystem::path& out);
#endif

int main(int argc, char** argv) {
    const std::string_view role = argc >= 2 ? argv[1] : "";
    if (role == "server" && argc == 2) return interop_server();
    if (role == "client") return interop_client(argc - 1, argv + 1);
#ifdef KRMX_INTEROP_METRICS
    if (role == "metrics" && argc == 3) return interop_metrics(argv[2]);
#endif
    std::cerr << "usage: interop_peer server | interop_peer client PORT USERNAME | interop_peer metrics FOLDER\n";
    return 2;
}
