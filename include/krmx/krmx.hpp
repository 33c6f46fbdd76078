#pragma once
// The umbrella header: everything in krmx that needs nothing but nlohmann/json (and the standard library's
// threads, for durable domains' writer threads). Integrations that need more (SQLite, PostgreSQL,
// Boost.Beast) are included on purpose.

#include "krmx/version.hpp"

#include "krmx/core/clock.hpp"
#include "krmx/core/define_view.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/json_delta.hpp"
#include "krmx/core/json_optional.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/payload.hpp"
#include "krmx/core/snapshot_state.hpp"
#include "krmx/core/subscription.hpp"

#include "krmx/stream/draft.hpp"
#include "krmx/stream/log.hpp"
#include "krmx/stream/optimistic_stream.hpp"
#include "krmx/stream/projection_model.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"

#include "krmx/sync/audience.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/durable.hpp"
#include "krmx/sync/projection_client.hpp"
#include "krmx/sync/projection_domain.hpp"
#include "krmx/sync/projection_messages.hpp"
#include "krmx/sync/stream_client.hpp"
#include "krmx/sync/stream_domain.hpp"
#include "krmx/sync/stream_messages.hpp"
#include "krmx/sync/transport.hpp"

#include "krmx/net/client_session.hpp"
#include "krmx/net/session.hpp"

#include "krmx/testing/hub.hpp"
