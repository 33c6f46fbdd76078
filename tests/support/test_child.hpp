#pragma once
// Programs a test starts as separate processes (killed with SIGKILL in the middle of a write, holding a lock
// that another process waits for) are part of the test program they serve: `<test program> --krmx-child NAME
// ARGS...` runs child NAME with ARGS instead of the tests (tests/support/catch_main.cpp), and a test starts
// one with krmx::testing::ChildProcess{krmx::testing::TestChild{"NAME"}, {ARGS...}} (a test that is no C++
// runs the command itself). Built as programs of their own, the eight children parsed the headers and
// instantiated the templates their tests already had: 201 s of compile time in the sanitized build (measured
// one by one), for 1 000 lines of their own.
//
// A child's file defines its `int run(int argc, char** argv)` (argv[0] is the child's name, then ARGS) in a
// namespace of its own, so that it shares a unity build's translation unit with the tests, and registers it:
//   KRMX_TEST_CHILD(lock_worker, krmx_child_lock_worker::run);

namespace krmx_test {

using ChildMain = int (*)(int argc, char** argv);

/// Makes `main` the child `name` of this test program (defined in catch_main.cpp).
void register_child(const char* name, ChildMain main);

struct RegisterChild {
    RegisterChild(const char* name, ChildMain main) { register_child(name, main); }
};

}  // namespace krmx_test

#define KRMX_TEST_CHILD(name, function) \
    static const ::krmx_test::RegisterChild krmx_test_child_##name { #name, &function }
