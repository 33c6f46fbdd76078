#pragma once
// What the test tools need of a store under test: a fixture that owns one store on a place of its own.
// Default-constructible (each contract case and each simulated game makes a fresh one), `open()` gives the
// store by reference, `reopen()` restarts it on the same data (only what reached the place survives; a
// memory store keeps everything), `close()` closes it. The contract suites (event_store_contract.hpp,
// checkpoint_store_contract.hpp) and the simulator (simulator.hpp) take the same fixtures.

#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>

#include "krmx/store/event_store.hpp"
#include "krmx/store/memory_event_store.hpp"

namespace krmx::testing {

namespace detail {
/// The store a fixture's `open()` gives.
template <class Fixture>
using opened_store_t = std::remove_reference_t<decltype(std::declval<Fixture&>().open())>;

/// A fixture whose `open()` gives its store by reference.
template <class Fixture>
concept opens_lvalue = requires(Fixture& fixture) {
    { fixture.open() } -> std::same_as<opened_store_t<Fixture>&>;
};

/// A fixture that restarts its store on the same data (`reopen()`) and closes it (`close()`).
template <class Fixture>
concept restarts = requires(Fixture& fixture) {
    fixture.reopen();
    fixture.close();
};

template <class Fixture>
concept opens_event_store = opens_lvalue<Fixture> && EventStore<opened_store_t<Fixture>>;
}  // namespace detail

/// A fixture of a krmx::EventStore: what event_store_contract and the Simulator run on.
template <class Fixture>
concept EventStoreFixture =
    std::default_initializable<Fixture> && detail::opens_event_store<Fixture> && detail::restarts<Fixture>;

/// The memory store's fixture: it keeps everything across a restart (as a durable store would), and loses
/// everything when closed. The simulator's default store.
struct MemoryStoreFixture {
    static constexpr const char* name = "memory";
    std::unique_ptr<MemoryEventStore> store = std::make_unique<MemoryEventStore>();
    MemoryEventStore& open() {
        if (!store) store = std::make_unique<MemoryEventStore>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};
static_assert(EventStoreFixture<MemoryStoreFixture>);

}  // namespace krmx::testing
