#pragma once
// Pessimistic locks for write models, one per name ("book-1"). A provider hands out `Lock`s, RAII handles
// that release when destroyed. `InProcessLockProvider` serializes the threads of one process that share the
// provider; `SqliteLockProvider` (sqlite_lock_provider.hpp) serializes processes sharing a file;
// `PostgresLockProvider` (postgres_lock_provider.hpp) serializes processes on any machine sharing a server.
// Every provider takes the same names, those that keep the one name rule (krmx/store/names.hpp), and refuses
// any other with std::invalid_argument before it does anything. Locks are not reentrant: acquiring a name you
// hold already waits forever (in-process, PostgreSQL) or until the lease ends (SQLite).

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "krmx/store/names.hpp"

namespace krmx {

/// A held lock; releases on destruction or `release()`. Move-only.
class [[nodiscard]] Lock {
  public:
    Lock() = default;
    /// `release` frees the lock. When it throws, the lock ends some other way (its lease runs out, its
    /// session ends) and the failure is counted in `*failed_releases`: the provider's count, for its users
    /// to read. A lock made without a counter leaves counting to whoever made it.
    explicit Lock(std::function<void()> release, std::atomic<std::uint64_t>* failed_releases = nullptr)
        : release_(std::move(release)), failed_releases_(failed_releases) {}
    Lock(Lock&& other) noexcept
        : release_(std::exchange(other.release_, nullptr)), failed_releases_(other.failed_releases_) {}
    Lock& operator=(Lock&& other) noexcept {
        if (this != &other) {
            release();
            release_ = std::exchange(other.release_, nullptr);
            failed_releases_ = other.failed_releases_;
        }
        return *this;
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    ~Lock() { release(); }

    void release() noexcept {
        if (auto r = std::exchange(release_, nullptr)) {
            try {
                r();
            } catch (...) {
                if (failed_releases_ != nullptr) failed_releases_->fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
    [[nodiscard]] bool held() const noexcept { return static_cast<bool>(release_); }

  private:
    std::function<void()> release_;
    std::atomic<std::uint64_t>* failed_releases_ = nullptr;
};

/// Anything that hands out locks by name, blocking until the lock is free.
template <class P>
concept LockProvider = requires(P& provider, std::string_view name) {
    { provider.acquire(name) } -> std::same_as<Lock>;
};

namespace detail {

/// Throws std::invalid_argument, with the rule's reason, for a lock name that breaks the name rule.
inline void check_lock_name(std::string_view name) {
    if (auto problem = name_problem("lock name", name)) throw std::invalid_argument(*std::move(problem));
}

}  // namespace detail

/// Locks shared by the threads of one process that use the same provider object.
class InProcessLockProvider {
  public:
    InProcessLockProvider() = default;
    InProcessLockProvider(const InProcessLockProvider&) = delete;
    InProcessLockProvider& operator=(const InProcessLockProvider&) = delete;

    /// Waits until `name` is free, then holds it.
    [[nodiscard]] Lock acquire(std::string_view name) {
        detail::check_lock_name(name);
        std::string owned{name};
        {
            std::unique_lock lock{mutex_};
            released_.wait(lock, [&] { return !held_.contains(owned); });
            held_.insert(owned);
        }
        // Releasing cannot fail (a set's erase, a notify): nothing to count.
        return Lock{[this, owned = std::move(owned)] {
            {
                std::lock_guard lock{mutex_};
                held_.erase(owned);
            }
            released_.notify_all();
        }};
    }

    /// Whether `name` is held right now (for tests and diagnostics).
    [[nodiscard]] bool is_held(std::string_view name) const {
        std::lock_guard lock{mutex_};
        return held_.contains(std::string{name});
    }

  private:
    mutable std::mutex mutex_;
    std::condition_variable released_;
    std::set<std::string> held_;
};

static_assert(LockProvider<InProcessLockProvider>);

/// A non-owning reference to any lock provider; the provider must outlive it.
class LockProviderRef {
  public:
    LockProviderRef() = default;
    template <LockProvider P>
    requires(!std::same_as<P, LockProviderRef>)
        LockProviderRef(P& provider)  // NOLINT(google-explicit-constructor): any provider converts
        : acquire_([&provider](std::string_view name) { return provider.acquire(name); }) {}

    [[nodiscard]] Lock acquire(std::string_view name) const { return acquire_(name); }
    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(acquire_); }

  private:
    std::function<Lock(std::string_view)> acquire_;
};

}  // namespace krmx
