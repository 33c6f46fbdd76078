#pragma once
// Dispatch outcomes, refusal reasons and verdicts: what a stream answers when it is handed an event.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace krmx {

/// What happened to a dispatched event. Only `accepted` changes the state or the log.
enum class Outcome : std::uint8_t {
    accepted,         ///< applied and appended to the log
    unknown_type,     ///< no handler is registered for the event's type
    invalid_payload,  ///< the payload does not convert to the handler's payload type
    malformed,        ///< not an event at all: not a JSON object, or `type` is not a string
    rejected,         ///< a guard refused, or the handler threw krmx::Rejected
    failed,           ///< the handler threw something else (a bug, most likely): refused all the same
};

[[nodiscard]] constexpr std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
        case Outcome::accepted: return "accepted";
        case Outcome::unknown_type: return "unknown_type";
        case Outcome::invalid_payload: return "invalid_payload";
        case Outcome::malformed: return "malformed";
        case Outcome::rejected: return "rejected";
        case Outcome::failed: return "failed";
    }
    return "unknown";
}

/// The intended way for a handler to refuse an event: the message becomes the reason sent to the client.
struct Rejected : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A refusal reason. Holds a string literal without allocating (refusals are frequent: players and cheaters
/// send invalid events all the time), or an owned string when the reason is composed at run time.
class Reason {
public:
    Reason() = default;
    /// From a string literal: kept by pointer, no allocation.
    template <std::size_t N>
    constexpr Reason(const char (&literal)[N]) noexcept : literal_(literal), literal_size_(N - 1) {}  // NOLINT
    explicit Reason(std::string text) : owned_(std::move(text)) {}

    [[nodiscard]] std::string_view view() const noexcept {
        return literal_ ? std::string_view{literal_, literal_size_} : std::string_view{owned_};
    }
    [[nodiscard]] std::string str() const { return std::string{view()}; }
    [[nodiscard]] bool empty() const noexcept { return view().empty(); }
    friend bool operator==(const Reason& a, const Reason& b) noexcept { return a.view() == b.view(); }

private:
    const char* literal_ = nullptr;
    std::size_t literal_size_ = 0;
    std::string owned_;
};

/// What a guard answers: allow, or refuse with a reason. Refusing through a verdict costs no exception.
class [[nodiscard]] Verdict {
public:
    [[nodiscard]] static Verdict allow() noexcept { return Verdict{}; }
    [[nodiscard]] static Verdict refuse(Reason reason) noexcept {
        Verdict v;
        v.allowed_ = false;
        v.reason_ = std::move(reason);
        return v;
    }
    [[nodiscard]] bool allowed() const noexcept { return allowed_; }
    explicit operator bool() const noexcept { return allowed_; }
    [[nodiscard]] const Reason& reason() const noexcept { return reason_; }
    [[nodiscard]] Reason&& take_reason() && noexcept { return std::move(reason_); }

private:
    Verdict() = default;
    bool allowed_ = true;
    Reason reason_;
};

[[nodiscard]] inline Verdict allow() noexcept { return Verdict::allow(); }
/// `return krmx::refuse("already claimed");` from a guard.
template <std::size_t N>
[[nodiscard]] Verdict refuse(const char (&literal)[N]) noexcept {
    return Verdict::refuse(Reason{literal});
}
[[nodiscard]] inline Verdict refuse(std::string reason) { return Verdict::refuse(Reason{std::move(reason)}); }

/// The answer to one dispatch.
class [[nodiscard]] DispatchResult {
public:
    DispatchResult() = default;
    DispatchResult(Outcome outcome, Reason reason) noexcept : outcome_(outcome), reason_(std::move(reason)) {}
    [[nodiscard]] static DispatchResult accepted_at(std::size_t position) noexcept {
        DispatchResult r;
        r.position_ = position;
        return r;
    }

    [[nodiscard]] Outcome outcome() const noexcept { return outcome_; }
    [[nodiscard]] bool accepted() const noexcept { return outcome_ == Outcome::accepted; }
    explicit operator bool() const noexcept { return accepted(); }
    /// Why the event was not accepted; empty when it was.
    [[nodiscard]] std::string_view reason() const noexcept { return reason_.view(); }
    /// The event's 0-based position in the log, when accepted.
    [[nodiscard]] std::optional<std::size_t> position() const noexcept {
        return accepted() ? std::optional<std::size_t>{position_} : std::nullopt;
    }

private:
    Outcome outcome_ = Outcome::accepted;
    Reason reason_;
    std::size_t position_ = 0;
};

}  // namespace krmx
