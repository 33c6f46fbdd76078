#pragma once
// Subscriptions with RAII handles, safe against the subscriber, the signal or both going away first,
// and against subscribers that throw or unsubscribe while being notified.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace krmx {

/// Ends its subscription when destroyed (or on `cancel()`). Move-only; outliving the source is safe.
class [[nodiscard]] Subscription {
  public:
    Subscription() = default;
    explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
    Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
    Subscription& operator=(Subscription&& other) noexcept {
        if (this != &other) {
            cancel();
            cancel_ = std::exchange(other.cancel_, nullptr);
        }
        return *this;
    }
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription() { cancel(); }

    void cancel() noexcept {
        if (auto c = std::exchange(cancel_, nullptr)) {
            try {
                c();
            } catch (...) {
                // Cancelling only flips a flag; nothing to report.
            }
        }
    }
    [[nodiscard]] bool active() const noexcept { return static_cast<bool>(cancel_); }

  private:
    std::function<void()> cancel_;
};

namespace detail {

// A list of callbacks. A callback that throws is counted and skipped; the others still run.
// Callbacks may subscribe or cancel (themselves included) while being notified: new ones wait in
// `added` and cancelled ones are only marked until the outermost emission ends.
template <class... Args>
class Signal {
  public:
    template <class F>
    Subscription connect(F&& callback) {
        State& s = *state_;
        const std::uint64_t id = ++s.next_id;
        Slot slot{id, true, std::function<void(Args...)>(std::forward<F>(callback))};
        (s.depth > 0 ? s.added : s.slots).push_back(std::move(slot));
        ++s.live;
        std::weak_ptr<State> weak = state_;
        return Subscription{[weak, id] {
            if (auto alive = weak.lock()) alive->cancel(id);
        }};
    }

    void emit(Args... args) {
        State& s = *state_;
        if (s.slots.empty()) return;
        const auto keep = state_;  // a callback may destroy the signal's owner
        ++s.depth;
        for (std::size_t i = 0; i < s.slots.size(); ++i) {
            if (!s.slots[i].alive) continue;
            try {
                s.slots[i].fn(args...);
            } catch (...) {
                ++s.errors;
            }
        }
        if (--s.depth == 0) s.settle();
    }

    // On every dispatch's path: one load, not a walk over the slot lists.
    [[nodiscard]] bool empty() const noexcept { return state_->live == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return state_->live; }
    /// How many times a subscriber threw.
    [[nodiscard]] std::uint64_t errors() const noexcept { return state_->errors; }

  private:
    struct Slot {
        std::uint64_t id;
        bool alive;
        std::function<void(Args...)> fn;
    };
    struct State {
        std::vector<Slot> slots;
        std::vector<Slot> added;
        std::uint64_t next_id = 0;
        std::uint64_t errors = 0;
        std::size_t live = 0;  // subscriptions not cancelled
        int depth = 0;
        void cancel(std::uint64_t id) {
            for (auto* list : {&slots, &added}) {
                for (auto& slot : *list) {
                    if (slot.id == id && slot.alive) {
                        slot.alive = false;
                        --live;
                    }
                }
            }
            if (depth == 0) settle();
        }
        void settle() {
            std::erase_if(slots, [](const Slot& slot) { return !slot.alive; });
            for (auto& slot : added) {
                if (slot.alive) slots.push_back(std::move(slot));
            }
            added.clear();
        }
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace detail
}  // namespace krmx
