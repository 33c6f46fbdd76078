#pragma once
// krmx::Audience: who hears a domain (a StreamDomain or a ProjectionDomain).

namespace krmx {

/// Who hears a domain: every linked user, or only the members server code admits (`admit`, `dismiss`).
enum class Audience { everyone, members };

}  // namespace krmx
