// The tests' main, compiled once per build tree: Catch2's session, or a child process of a test
// (test_child.hpp) when the program is started as `--krmx-child NAME ARGS...`.
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#if defined(KRMX_CATCH2_V3)
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "test_child.hpp"

namespace krmx_test {
namespace {
std::map<std::string, ChildMain, std::less<>>& children() {
    static std::map<std::string, ChildMain, std::less<>> registered;
    return registered;
}
}  // namespace

void register_child(const char* name, ChildMain main) { children().emplace(name, main); }

}  // namespace krmx_test

int main(int argc, char** argv) {
    if (argc >= 3 && std::string_view{argv[1]} == "--krmx-child") {
        const auto& children = krmx_test::children();
        const auto it = children.find(std::string_view{argv[2]});
        if (it == children.end()) {
            std::fprintf(stderr, "%s: no child process named %s in this test program\n", argv[0], argv[2]);
            return 2;
        }
        return it->second(argc - 2, argv + 2);
    }
    return Catch::Session().run(argc, argv);
}
