#include "catch.hpp"

int odr_counter_from_a();
int odr_counter_from_b();
const void* odr_model_address_a();
const void* odr_model_address_b();
const void* odr_event_type_address_a();
const void* odr_event_type_address_b();

TEST_CASE("the umbrella header included twice in two linked translation units agrees with itself") {
    CHECK(odr_counter_from_a() == 1);
    CHECK(odr_counter_from_b() == 2);
    CHECK(odr_model_address_a() == odr_model_address_b());
    CHECK(odr_event_type_address_a() == odr_event_type_address_b());
}
