#include <krmx/krmx.hpp>

#include "claimable_counter/counter.hpp"

int odr_counter_from_b() {
    krmx::Stream<Counter> stream{counter::model()};
    (void)stream.dispatch("a", counter::increment(2));
    return stream.state().counter;
}
const void* odr_model_address_b() {
    return &counter::model();
}
const void* odr_event_type_address_b() {
    return &counter::increment;
}
