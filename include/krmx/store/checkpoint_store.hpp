#pragma once
// Checkpoint storage for read models: under a key, the model's state as JSON together with the position
// of the last event folded into it and the version of the model (and catalog) that produced it. Saving
// state and position together is what makes "restore, then replay after the position" exact.

#include <concepts>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "krmx/store/event_store.hpp"

namespace krmx {

struct Checkpoint {
    nlohmann::json state{};
    /// The last event folded into `state`; replay resumes after it.
    Position position = 0;
    /// Identifies the model and catalog revision behind `state`; a reader with another version discards it.
    std::string version{};

    friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

/// `save` replaces the checkpoint under its key atomically; `load` gives it back or nothing;
/// `erase` removes it and says whether there was one. Errors are StoreErrors (CorruptRecord for a damaged
/// one).
template <class S>
concept CheckpointStore = requires(S& store, const S& const_store, std::string_view key,
                                   const Checkpoint& checkpoint) {
    { const_store.load(key) } -> std::same_as<std::optional<Checkpoint>>;
    store.save(key, checkpoint);
    { store.erase(key) } -> std::same_as<bool>;
};

/// Checkpoints in memory, for tests. Thread-safe.
class MemoryCheckpointStore {
  public:
    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        std::lock_guard lock{mutex_};
        const auto found = checkpoints_.find(std::string{key});
        if (found == checkpoints_.end()) return std::nullopt;
        return found->second;
    }

    void save(std::string_view key, const Checkpoint& checkpoint) {
        Checkpoint copy = checkpoint;  // copy outside the lock and before replacing: all or nothing
        std::lock_guard lock{mutex_};
        checkpoints_.insert_or_assign(std::string{key}, std::move(copy));
    }

    bool erase(std::string_view key) {
        std::lock_guard lock{mutex_};
        return checkpoints_.erase(std::string{key}) > 0;
    }

  private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Checkpoint> checkpoints_;
};

static_assert(CheckpointStore<MemoryCheckpointStore>);

}  // namespace krmx
