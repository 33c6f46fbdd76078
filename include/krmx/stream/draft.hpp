#pragma once
// Draft<State>: a handler's view of the state that knows whether the handler has written to it yet.

#include <utility>

namespace krmx {

/// Handed to handlers written as `(krmx::Draft<State>& s, dispatcher, payload)`. Reads go through
/// `*s` / `s->` (const); writes through `s.write()`. Because the stream knows nothing was written
/// before `write()`, a handler that throws before it costs no roll back, however large the state.
template <class State>
class Draft {
  public:
    Draft(State& state, bool& written) noexcept : state_(state), written_(written) {}
    Draft(const Draft&) = delete;
    Draft& operator=(const Draft&) = delete;

    [[nodiscard]] const State& operator*() const noexcept { return state_; }
    [[nodiscard]] const State* operator->() const noexcept { return &state_; }
    [[nodiscard]] const State& get() const noexcept { return state_; }
    /// Mutable access. From here on a throw makes the stream roll the state back.
    [[nodiscard]] State& write() noexcept {
        written_ = true;
        return state_;
    }
    void replace(State next) {
        written_ = true;
        state_ = std::move(next);
    }
    [[nodiscard]] bool written() const noexcept { return written_; }

  private:
    State& state_;
    bool& written_;
};

}  // namespace krmx
