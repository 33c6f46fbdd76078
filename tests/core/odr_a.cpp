#include <krmx/krmx.hpp>

#include "claimable_counter/counter.hpp"

int odr_counter_from_a() {
    krmx::Stream<Counter> stream{counter::model()};
    (void)stream.dispatch("a", counter::increment(1));
    return stream.state().counter;
}
const void* odr_model_address_a() {
    return &counter::model();
}
const void* odr_event_type_address_a() {
    return &counter::increment;
}
