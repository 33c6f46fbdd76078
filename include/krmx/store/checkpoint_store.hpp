#pragma once
// Checkpoint storage for read models: under a key, the model's state as JSON together with the position
// of the last event folded into it and the version of the model (and catalog) that produced it. Saving
// state and position together is what makes "restore, then replay after the position" exact.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/store/event_store.hpp"
#include "krmx/store/names.hpp"

namespace krmx {

struct Checkpoint {
    nlohmann::json state{};
    /// The last event folded into `state`; replay resumes after it.
    Position position = 0;
    /// Identifies the model and catalog revision behind `state`; a reader with another version discards it.
    std::string version{};

    friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

/// `save` replaces the checkpoint under its key (see checkpoint_key) atomically; `load` gives it back or
/// nothing; `erase` removes it and says whether there was one. Keys keep the name rule of store names
/// (krmx/store/names.hpp; empty is allowed): `save` refuses a key that breaks it, and under such a key
/// `load` finds nothing and `erase` nothing to remove. Errors are StoreErrors (CorruptRecord for a damaged
/// checkpoint).
template <class S>
concept CheckpointStore = requires(S& store, const S& const_store, std::string_view key,
                                   const Checkpoint& checkpoint) {
    { const_store.load(key) } -> std::same_as<std::optional<Checkpoint>>;
    store.save(key, checkpoint);
    { store.erase(key) } -> std::same_as<bool>;
};

namespace detail {
/// Why no checkpoint store can keep a checkpoint under `key`, or nothing: keys keep the name rule of every
/// store name (names.hpp; PostgreSQL indexes them), though a key may be empty. A checkpoint cannot be saved
/// under such a key, and so it is never found under one: `load` gives nothing and `erase` false.
[[nodiscard]] inline std::optional<std::string> checkpoint_key_problem(std::string_view key) {
    return name_problem("checkpoint key", key, true);
}

/// Throws StoreError when no checkpoint store can keep a checkpoint under `key`.
inline void check_checkpoint_key(std::string_view key) {
    if (auto problem = checkpoint_key_problem(key)) throw StoreError(*problem);
}

// Escapes the characters that separate the parts of a checkpoint key, so that parts cannot run together.
inline void append_key_part(std::string& key, std::string_view part) {
    for (const char c : part) {
        switch (c) {
            case '%':
                key += "%25";
                break;
            case '|':
                key += "%7C";
                break;
            case ',':
                key += "%2C";
                break;
            default:
                key += c;
        }
    }
}

inline void append_key_list(std::string& key, std::string_view label, std::vector<std::string> items) {
    if (items.empty()) return;
    // A filter selects by set membership: the order of its lists and repeats change nothing.
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    key += '|';
    key += label;
    key += '=';
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) key += ',';
        append_key_part(key, items[i]);
    }
}
}  // namespace detail

/// The key a read model's checkpoint is stored under: the model's name, followed by its event filter when
/// it has one (`book.listing|streams=book-1,book-2|types=book.added`), so that two runners of one model
/// that read different events (book 1, book 2) never restore each other's state. The filter's lists are
/// sorted and deduplicated, and `%`, `|` and `,` inside names are escaped (`%25`, `%7C`, `%2C`): different
/// (name, filter) pairs never share a key. An unfiltered model's key is its name (as before filters
/// counted). Revisions are not part of the key but of the checkpoint's `version`: a model whose revision
/// changed finds the old checkpoint, discards it and resets (ReadModel::on_reset) instead of leaving it
/// behind. Keys keep the name rule (see CheckpointStore): a filter that spells out more than about 1 kB of
/// names makes a key no checkpoint store saves.
[[nodiscard]] inline std::string checkpoint_key(std::string_view model, const EventFilter& filter) {
    std::string key;
    detail::append_key_part(key, model);
    detail::append_key_list(key, "streams", filter.streams);
    detail::append_key_list(key, "types", filter.types);
    return key;
}

/// Checkpoints in memory, for tests. Thread-safe.
class MemoryCheckpointStore {
  public:
    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const {
        if (detail::checkpoint_key_problem(key)) return std::nullopt;
        std::lock_guard lock{mutex_};
        const auto found = checkpoints_.find(std::string{key});
        if (found == checkpoints_.end()) return std::nullopt;
        return found->second;
    }

    void save(std::string_view key, const Checkpoint& checkpoint) {
        detail::check_checkpoint_key(key);
        Checkpoint copy = checkpoint;  // copy outside the lock and before replacing: all or nothing
        std::lock_guard lock{mutex_};
        checkpoints_.insert_or_assign(std::string{key}, std::move(copy));
    }

    bool erase(std::string_view key) {
        if (detail::checkpoint_key_problem(key)) return false;
        std::lock_guard lock{mutex_};
        return checkpoints_.erase(std::string{key}) > 0;
    }

  private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Checkpoint> checkpoints_;
};

static_assert(CheckpointStore<MemoryCheckpointStore>);

/// Any CheckpointStore, by reference (the store must outlive it): what options hold, so that they need no
/// template parameter. Empty when default-made. Itself a CheckpointStore.
class CheckpointStoreRef {
  public:
    CheckpointStoreRef() = default;
    template <CheckpointStore S>
    requires(!std::same_as<S, CheckpointStoreRef>)
        CheckpointStoreRef(S& store)  // NOLINT(google-explicit-constructor): any store converts
        : load_([&store](std::string_view key) { return std::as_const(store).load(key); }),
          save_([&store](std::string_view key, const Checkpoint& checkpoint) { store.save(key, checkpoint); }),
          erase_([&store](std::string_view key) { return store.erase(key); }) {}

    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(load_); }
    [[nodiscard]] std::optional<Checkpoint> load(std::string_view key) const { return load_(key); }
    void save(std::string_view key, const Checkpoint& checkpoint) const { save_(key, checkpoint); }
    bool erase(std::string_view key) const { return erase_(key); }

  private:
    std::function<std::optional<Checkpoint>(std::string_view)> load_;
    std::function<void(std::string_view, const Checkpoint&)> save_;
    std::function<bool(std::string_view)> erase_;
};

static_assert(CheckpointStore<CheckpointStoreRef>);

}  // namespace krmx
