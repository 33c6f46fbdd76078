#pragma once
// krmx::Message: one wire message `{"type": string, "payload"?: any}` as its receiver read it, once. The
// session (or any transport) reads each frame with a MessageReader under krmx's one grammar
// (core/detail/json_scan.hpp) and hands the Message on: whoever handles it (the host, a domain, the model's
// decoder, the store) takes the members it needs from here and never scans the text again.
//
// A Message views the text it was read from: valid while that text is, i.e. during the callback it is
// handed to.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "krmx/core/detail/json_scan.hpp"

namespace krmx {

class MessageReader;

class Message {
  public:
    Message() = default;
    Message(const Message&) = delete;  // it points into itself: read another, do not copy
    Message& operator=(const Message&) = delete;
    Message(Message&&) noexcept = default;
    Message& operator=(Message&&) noexcept = default;
    ~Message() = default;

    /// The whole message, exactly as received.
    [[nodiscard]] std::string_view text() const noexcept { return text_; }
    /// The `type` member, decoded.
    [[nodiscard]] std::string_view type() const noexcept { return type_; }
    /// The raw text of the `payload` member; empty when the message has none.
    [[nodiscard]] std::string_view payload() const noexcept { return payload_ ? payload_->value : std::string_view{}; }
    /// Whether the payload is a JSON object (whose members `field` finds).
    [[nodiscard]] bool payload_is_object() const noexcept {
        return payload_ != nullptr && !payload_->value.empty() && payload_->value.front() == '{';
    }
    /// The member `key` of the payload (compared decoded), or nullptr. Its `value` is the raw text; `depth`
    /// says how deep it nests.
    [[nodiscard]] const detail::JsonMember* field(std::string_view key) const {
        return detail::find_member(scanned_.payload, key);
    }
    /// The members of a payload member whose value is an object (a `stream/append`'s event, say), in order.
    [[nodiscard]] std::span<const detail::JsonMember> members_of(const detail::JsonMember& field) const noexcept {
        if (field.child_count == 0) return {};
        return std::span<const detail::JsonMember>{scanned_.children}.subspan(field.first_child, field.child_count);
    }

  private:
    friend class MessageReader;
    std::string_view text_;
    std::string_view type_;
    std::string decoded_type_;  // when the type has escapes
    const detail::JsonMember* payload_ = nullptr;
    detail::ScannedMessage scanned_;
};

/// Reads frames into Messages, reusing its buffers. One reader serves one message at a time: a handler
/// that may receive another message while it handles one (a transport delivering synchronously) needs
/// another reader.
class MessageReader {
  public:
    /// Reads `text`: an empty string when it is a message (then `message()` holds it), else why it is not
    /// one (not JSON under krmx's grammar, not an object, nested deeper than `max_depth`, no string
    /// `type`).
    [[nodiscard]] std::string read(std::string_view text, int max_depth = detail::json_max_message_depth) {
        Message& m = message_;
        m.text_ = text;
        m.type_ = {};
        m.payload_ = nullptr;
        if (auto error = detail::scan_message(text, m.scanned_, max_depth); !error.empty()) return error;
        const auto* type = detail::find_member(m.scanned_.members, "type");
        if (type == nullptr) return "the message has no \"type\"";
        if (type->value.front() != '"') return "the message's \"type\" is not a string";  // never empty
        const std::string_view inner = type->value.substr(1, type->value.size() - 2);
        if (inner.find('\\') == std::string_view::npos) {
            m.type_ = inner;
        } else {
            m.decoded_type_.clear();
            detail::json_unescape(inner, m.decoded_type_);
            m.type_ = m.decoded_type_;
        }
        m.payload_ = detail::find_member(m.scanned_.members, "payload");
        return {};
    }
    [[nodiscard]] const Message& message() const noexcept { return message_; }

  private:
    Message message_;
};

}  // namespace krmx
