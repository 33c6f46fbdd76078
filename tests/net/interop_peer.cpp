// The C++ peers of the Node interop tests in one program (one build of Beast's server and client code
// instead of two): `interop_peer server` (interop_server.cpp) and `interop_peer client PORT USERNAME`
// (interop_client.cpp).
#include <iostream>
#include <string_view>

int interop_server();
int interop_client(int argc, char** argv);

int main(int argc, char** argv) {
    const std::string_view role = argc >= 2 ? argv[1] : "";
    if (role == "server" && argc == 2) return interop_server();
    if (role == "client") return interop_client(argc - 1, argv + 1);
    std::cerr << "usage: interop_peer server | interop_peer client PORT USERNAME\n";
    return 2;
}
