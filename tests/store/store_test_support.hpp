#pragma once
// Shared by the store tests: events to append, random names, and a subscription recorder that tests can wait
// on (the ones the exported contract suites use, krmx/testing/). The stores themselves are the fixtures of
// stores.hpp.

#include "krmx/store/event_store.hpp"
#include "krmx/testing/detail/contract_events.hpp"
#include "krmx/testing/subscription_recorder.hpp"
#include "stores.hpp"
#include "temp_dir.hpp"

namespace krmx::testing {

using detail::event;
using detail::random_name;
using Recorder = SubscriptionRecorder;

}  // namespace krmx::testing
