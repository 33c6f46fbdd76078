// Takes a PostgreSQL lock, says "held", and keeps it until it is killed (the test kills it with SIGKILL).
// Usage: krmx_models_tests --krmx-child krmx_models_postgres_lock_holder <conninfo> <schema> <key>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>

#include "krmx/models/postgres_lock_provider.hpp"

#include "test_child.hpp"

namespace child_krmx_models_postgres_lock_holder {

int run(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s <conninfo> <schema> <key>\n", argv[0]);
        return 2;
    }
    try {
        krmx::PostgresLockProvider locks{{.connection = argv[1], .schema = argv[2]}};
        const auto lock = locks.acquire(argv[3]);
        std::printf("held\n");
        std::fflush(stdout);
        for (;;) std::this_thread::sleep_for(std::chrono::seconds{1});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lock holder failed: %s\n", e.what());
        return 1;
    }
}

}  // namespace child_krmx_models_postgres_lock_holder

KRMX_TEST_CHILD(krmx_models_postgres_lock_holder, child_krmx_models_postgres_lock_holder::run);
