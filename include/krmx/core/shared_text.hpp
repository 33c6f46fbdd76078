#pragma once
// krmx::SharedText: one serialised message, shared by every recipient instead of copied for each. A domain
// that sends the same text to the members of a room makes it once; the WebSocket server then writes it to
// every connection from the one allocation (net/detail/combining_stream.hpp).

#include <memory>
#include <string>

namespace krmx {

/// One serialised message, immutable, shared by everyone it goes to.
using SharedText = std::shared_ptr<const std::string>;

/// Makes a SharedText of `text` (moved, not copied).
[[nodiscard]] inline SharedText share_text(std::string text) {
    return std::make_shared<const std::string>(std::move(text));
}

}  // namespace krmx
