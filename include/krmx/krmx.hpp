#pragma once
// The umbrella header: everything in krmx that needs nothing but nlohmann/json.
// Integrations that need more (SQLite, PostgreSQL, Boost.Beast) are included on purpose.

#include "krmx/version.hpp"

#include "krmx/core/clock.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/json_optional.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/payload.hpp"
#include "krmx/core/subscription.hpp"

#include "krmx/stream/draft.hpp"
#include "krmx/stream/log.hpp"
#include "krmx/stream/optimistic_stream.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"

#include "krmx/sync/messages.hpp"
#include "krmx/sync/stream_client.hpp"
#include "krmx/sync/stream_host.hpp"
#include "krmx/sync/stream_server.hpp"
#include "krmx/sync/transport.hpp"

#include "krmx/testing/hub.hpp"
