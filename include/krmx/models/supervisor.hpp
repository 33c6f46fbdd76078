#pragma once
// Supervisor: runs several read models (or any long-running task taking a std::stop_token), each on its
// own std::jthread; restarts one that fails after a backoff that doubles per consecutive failure, and
// reports the status of each. A restarted read model restores its last checkpoint (at-least-once).
//
// Backoff is measured on an injectable clock: with a krmx::ManualClock a test moves time itself and the
// worker notices within `poll` (real time), so nothing sleeps for the length of a backoff.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "krmx/core/clock.hpp"
#include "krmx/models/read_model_runner.hpp"

namespace krmx {

struct SupervisorOptions {
    /// The wait before the first restart; it doubles with each failure in a row.
    Duration initial_backoff = std::chrono::milliseconds{100};
    /// The longest wait. The backoff starts over after a run that lasted longer than this.
    Duration max_backoff = std::chrono::seconds{30};
    /// The clock that backoffs are measured on.
    ClockRef clock{};
    /// How often a waiting worker looks at the clock and its stop token (real time).
    std::chrono::milliseconds poll{2};
};

enum class WorkerStatus : std::uint8_t {
    idle,         ///< added, not started
    running,      ///< its task runs
    backing_off,  ///< it failed and waits before the next start
    finished,     ///< its task returned without being asked to stop (a catch-up that reached the end)
    stopped,      ///< stopped by the supervisor
};

[[nodiscard]] constexpr std::string_view to_string(WorkerStatus status) noexcept {
    switch (status) {
        case WorkerStatus::idle:
            return "idle";
        case WorkerStatus::running:
            return "running";
        case WorkerStatus::backing_off:
            return "backing_off";
        case WorkerStatus::finished:
            return "finished";
        case WorkerStatus::stopped:
            return "stopped";
    }
    return "?";
}

struct WorkerReport {
    std::string name;
    WorkerStatus status = WorkerStatus::idle;
    std::uint64_t starts = 0;    ///< how many times the task was started
    std::uint64_t failures = 0;  ///< how many times it threw
    std::string last_error{};    ///< what it threw last
    Duration backoff{};          ///< the wait before the next start, while backing off
};

class Supervisor {
  public:
    explicit Supervisor(SupervisorOptions options = {}) : options_(options) {}
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;
    ~Supervisor() { stop(); }

    /// Adds a task: `run(stop_token)` runs until the token stops (return) or it fails (throw).
    void add(std::string name, std::function<void(std::stop_token)> run) {
        std::lock_guard lock{mutex_};
        if (started_) throw std::logic_error("krmx::Supervisor: add workers before start()");
        for (const auto& worker : workers_) {
            if (worker->report.name == name) {
                throw std::logic_error("krmx::Supervisor: a worker named '" + name + "' is added already");
            }
        }
        auto worker = std::make_unique<Worker>();
        worker->report.name = std::move(name);
        worker->run = std::move(run);
        workers_.push_back(std::move(worker));
    }
    /// Adds a read model that follows its store live.
    template <class State, class Store>
    void add(ReadModelRunner<State, Store>& runner) {
        add(runner.model().name(), [&runner](std::stop_token stop) { (void)runner.follow(stop); });
    }

    void start() {
        std::lock_guard lock{mutex_};
        if (started_) return;
        started_ = true;
        for (auto& worker : workers_) {
            worker->thread = std::jthread([this, w = worker.get()](std::stop_token stop) { loop(*w, stop); });
        }
    }

    /// Stops every worker and waits for them.
    void stop() {
        std::vector<Worker*> workers;
        {
            std::lock_guard lock{mutex_};
            for (auto& worker : workers_) workers.push_back(worker.get());
        }
        for (auto* worker : workers) worker->thread.request_stop();
        wake_.notify_all();
        for (auto* worker : workers) {
            if (worker->thread.joinable()) worker->thread.join();
        }
    }

    [[nodiscard]] std::vector<WorkerReport> status() const {
        std::lock_guard lock{mutex_};
        std::vector<WorkerReport> reports;
        for (const auto& worker : workers_) reports.push_back(worker->report);
        return reports;
    }
    [[nodiscard]] WorkerReport status(std::string_view name) const {
        std::lock_guard lock{mutex_};
        for (const auto& worker : workers_) {
            if (worker->report.name == name) return worker->report;
        }
        throw std::out_of_range("krmx::Supervisor: no worker named '" + std::string{name} + "'");
    }

  private:
    struct Worker {
        WorkerReport report;
        std::function<void(std::stop_token)> run;
        std::jthread thread;
    };

    void loop(Worker& worker, std::stop_token stop) {
        Duration backoff = options_.initial_backoff;
        while (!stop.stop_requested()) {
            const TimePoint started_at = options_.clock.now();
            set(worker, [](WorkerReport& r) {
                r.status = WorkerStatus::running;
                ++r.starts;
            });
            try {
                worker.run(stop);
                set(worker, [&](WorkerReport& r) {
                    r.status = stop.stop_requested() ? WorkerStatus::stopped : WorkerStatus::finished;
                });
                return;
            } catch (...) {
                const std::string error = describe(std::current_exception());
                if (options_.clock.now() - started_at > options_.max_backoff)
                    backoff = options_.initial_backoff;
                set(worker, [&](WorkerReport& r) {
                    r.status = WorkerStatus::backing_off;
                    ++r.failures;
                    r.last_error = error;
                    r.backoff = backoff;
                });
            }
            const TimePoint until = options_.clock.now() + backoff;
            {
                std::unique_lock lock{mutex_};
                while (!stop.stop_requested() && options_.clock.now() < until) {
                    wake_.wait_for(lock, stop, options_.poll, [] { return false; });
                }
            }
            backoff = std::min(backoff * 2, options_.max_backoff);
        }
        set(worker, [](WorkerReport& r) { r.status = WorkerStatus::stopped; });
    }

    template <class F>
    void set(Worker& worker, F&& change) {
        std::lock_guard lock{mutex_};
        std::forward<F>(change)(worker.report);
    }

    static std::string describe(const std::exception_ptr& error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            return e.what();
        } catch (...) {
            return "a non-standard exception";
        }
    }

    SupervisorOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable_any wake_;
    std::vector<std::unique_ptr<Worker>> workers_;
    bool started_ = false;
};

}  // namespace krmx
