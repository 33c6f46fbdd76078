// A writer process for the PostgreSQL tests: appends batches to a shared schema and says "done" at the end.
// Events carry (writer, i, k), so the parent can check that every acknowledged event is stored exactly once.
// Usage: krmx_store_tests --krmx-child krmx_store_postgres_writer <conninfo> <schema> <writer> <appends> <shared|own>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "krmx/store/postgres_event_store.hpp"

#include "test_child.hpp"

namespace child_krmx_store_postgres_writer {

int run(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s <conninfo> <schema> <writer> <appends> <shared|own>\n", argv[0]);
        return 2;
    }
    try {
        const int writer = std::atoi(argv[3]);
        const int appends = std::atoi(argv[4]);
        const std::string stream =
            std::string{argv[5]} == "shared" ? "shared" : "own-" + std::to_string(writer);
        krmx::PostgresEventStore store{{.connection = argv[1], .schema = argv[2]},
                                       {.durability = krmx::PostgresDurability::group_commit}};
        std::printf("ready\n");
        std::fflush(stdout);
        for (int i = 0; i < appends; ++i) {
            std::vector<krmx::NewEvent> batch;
            for (int k = 0; k < 1 + (i + writer) % 3; ++k) {
                krmx::NewEvent event;
                event.type = "e";
                event.payload = nlohmann::json{{"w", writer}, {"i", i}, {"k", k}};
                batch.push_back(std::move(event));
            }
            (void)store.append(stream, krmx::ExpectedRevision::any(), batch);
        }
        std::printf("done\n");
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "writer failed: %s\n", e.what());
        return 1;
    }
}

}  // namespace child_krmx_store_postgres_writer

KRMX_TEST_CHILD(krmx_store_postgres_writer, child_krmx_store_postgres_writer::run);
