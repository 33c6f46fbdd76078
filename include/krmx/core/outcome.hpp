#pragma once
// Dispatch outcomes, refusal reasons and verdicts: what a stream answers when it is handed an event.

#include <cstddef>
#include <cstdint>
#include <memory>
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
        case Outcome::accepted:
            return "accepted";
        case Outcome::unknown_type:
            return "unknown_type";
        case Outcome::invalid_payload:
            return "invalid_payload";
        case Outcome::malformed:
            return "malformed";
        case Outcome::rejected:
            return "rejected";
        case Outcome::failed:
            return "failed";
    }
    return "unknown";
}

/// The intended way for a handler to refuse an event: the message becomes the reason sent to the client.
struct Rejected : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A refusal reason. Holds a string literal without allocating (refusals are frequent: players and cheaters
/// send invalid events all the time), or an owned string when the reason is composed at run time.
/// Three words, all zero when empty: results and verdicts that carry no reason cost next to nothing.
class Reason {
  public:
    Reason() noexcept = default;
    /// From a string literal: kept by pointer, no allocation.
    template <std::size_t N>
    constexpr Reason(const char (&literal)[N]) noexcept : data_(literal), size_(N - 1) {}  // NOLINT
    explicit Reason(std::string text) : owned_(std::make_unique<std::string>(std::move(text))) {
        data_ = owned_->data();
        size_ = owned_->size();
    }
    Reason(const Reason& other) : data_(other.data_), size_(other.size_) {
        if (other.owned_) {
            owned_ = std::make_unique<std::string>(*other.owned_);
            data_ = owned_->data();
        }
    }
    // The heap string itself does not move, so data_ stays valid in the new owner.
    Reason(Reason&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          owned_(std::move(other.owned_)) {}
    Reason& operator=(const Reason& other) {
        if (this != &other) *this = Reason{other};
        return *this;
    }
    Reason& operator=(Reason&& other) noexcept {
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        owned_ = std::move(other.owned_);
        return *this;
    }
    ~Reason() = default;

    [[nodiscard]] std::string_view view() const noexcept { return {data_, size_}; }
    [[nodiscard]] std::string str() const { return std::string{view()}; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    friend bool operator==(const Reason& a, const Reason& b) noexcept { return a.view() == b.view(); }

  private:
    const char* data_ = nullptr;
    std::size_t size_ = 0;
    std::unique_ptr<std::string> owned_;
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

[[nodiscard]] inline Verdict allow() noexcept {
    return Verdict::allow();
}
/// `return krmx::refuse("already claimed");` from a guard.
template <std::size_t N>
[[nodiscard]] Verdict refuse(const char (&literal)[N]) noexcept {
    return Verdict::refuse(Reason{literal});
}
[[nodiscard]] inline Verdict refuse(std::string reason) {
    return Verdict::refuse(Reason{std::move(reason)});
}

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
