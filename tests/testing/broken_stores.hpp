#pragma once
// Event store fixtures for the test tools' own tests: the memory store as it should be, and one broken on
// purpose that both the event store contract and the simulator must catch.

#include <memory>
#include <utility>

#include <krmx/store/memory_event_store.hpp>
#include <krmx/testing/store_fixture.hpp>

namespace broken_stores {

using MemoryEvents = krmx::testing::MemoryStoreFixture;

// A restart loses the last event: the store is rebuilt from all events but the last, as a store would be
// that acknowledged an append before it reached the disk.
struct LosesLastEventOnRestart : MemoryEvents {
    static constexpr const char* name = "a memory store that loses its last event on restart";
    void reopen() {
        auto events = open().read_all();
        if (!events.empty()) events.pop_back();
        auto rebuilt = std::make_unique<krmx::MemoryEventStore>();
        for (const krmx::RecordedEvent& e : events) {
            krmx::NewEvent again;
            again.id = e.id;
            again.type = e.type;
            again.payload = e.payload;
            again.dispatcher = e.dispatcher;
            again.timestamp = e.timestamp;
            again.metadata = e.metadata;
            (void)rebuilt->append(e.stream, krmx::ExpectedRevision::any(), again);
        }
        store = std::move(rebuilt);
    }
};

}  // namespace broken_stores
