#pragma once
// A test's child process: a program of the build started with posix_spawn (never a bare fork: the test
// process has threads), its stdin and stdout on pipes. Tests use it for what needs a real second process:
// kill -9 in the middle of an append, locks held by another process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

extern char** environ;

namespace krmx::testing {

/// A child process that is part of the test program itself (tests/support/test_child.hpp).
struct TestChild {
    std::string name;
};

class ChildProcess {
  public:
    /// Starts this test program as its child `child.name` with `arguments` (Linux: /proc/self/exe).
    ChildProcess(const TestChild& child, const std::vector<std::string>& arguments)
        : ChildProcess("/proc/self/exe", child_arguments(child, arguments)) {}
    /// Starts `program` with `arguments`; throws std::system_error if it cannot.
    ChildProcess(const std::string& program, const std::vector<std::string>& arguments) {
        // A child that died must not kill the test with SIGPIPE when the test writes to its stdin.
        ::signal(SIGPIPE, SIG_IGN);
        int in[2];
        int out[2];
        // O_CLOEXEC: a second child must not inherit this one's pipes (it would hold them open).
        if (::pipe2(in, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
        if (::pipe2(out, O_CLOEXEC) != 0) {
            const int error = errno;
            close_fd(in[0]);
            close_fd(in[1]);
            throw std::system_error(error, std::generic_category(), "pipe2");
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        std::vector<std::string> owned{program};
        owned.insert(owned.end(), arguments.begin(), arguments.end());
        std::vector<char*> argv;
        for (auto& argument : owned) argv.push_back(argument.data());
        argv.push_back(nullptr);
        const int spawned = ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        close_fd(in[0]);
        close_fd(out[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        if (spawned != 0) {
            close_fd(stdin_);
            close_fd(stdout_);
            pid_ = -1;
            throw std::system_error(spawned, std::generic_category(), "posix_spawn " + program);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        if (pid_ > 0 && !status_) (void)kill_and_wait();
        close_fd(stdin_);
        close_fd(stdout_);
    }

    /// Reads stdout until a line equal to `line` has arrived; false if the limit passes or stdout ends first.
    [[nodiscard]] bool wait_for_line(std::string_view line, std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            for (const auto& l : lines())
                if (l == line) return true;
            if (!read_some(until)) return false;
        }
    }

    /// Reads stdout until `count` complete lines have arrived; false if the limit passes or stdout ends first.
    [[nodiscard]] bool wait_for_lines(std::size_t count, std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (lines().size() < count) {
            if (!read_some(until)) return false;
        }
        return true;
    }

    /// Reads stdout for `duration` (or until it ends, if sooner).
    void read_for(std::chrono::milliseconds duration) {
        const auto until = std::chrono::steady_clock::now() + duration;
        while (read_some(until)) {
        }
    }

    /// Reads stdout until it ends; false if the limit passes first.
    [[nodiscard]] bool read_to_end(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (read_some(until)) {
        }
        return ended_;
    }

    /// Writes to the child's stdin; false if it is gone.
    bool write(std::string_view text) {
        while (!text.empty()) {
            const ssize_t n = ::write(stdin_, text.data(), text.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            text.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Kills the child with SIGKILL, reaps it and reads what it wrote before; returns its wait status.
    int kill_and_wait() {
        if (!status_) ::kill(pid_, SIGKILL);
        return wait();
    }

    /// Waits for the child to end and reads the rest of its stdout; returns its wait status.
    int wait() {
        if (!status_) {
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            status_ = status;
        }
        // The child is gone: every byte it wrote is in the pipe already.
        while (read_some(std::chrono::steady_clock::now())) {
        }
        return *status_;
    }

    [[nodiscard]] bool exited_cleanly() { return WIFEXITED(wait()) && WEXITSTATUS(*status_) == 0; }

    /// Everything read from stdout so far.
    [[nodiscard]] const std::string& output() const noexcept { return output_; }

    /// The complete lines read so far (a line cut off by a kill is left out).
    [[nodiscard]] std::vector<std::string> lines() const {
        std::vector<std::string> result;
        std::size_t begin = 0;
        for (std::size_t end; (end = output_.find('\n', begin)) != std::string::npos; begin = end + 1)
            result.push_back(output_.substr(begin, end - begin));
        return result;
    }

  private:
    static std::vector<std::string> child_arguments(const TestChild& child, const std::vector<std::string>& arguments) {
        std::vector<std::string> out{"--krmx-child", child.name};
        out.insert(out.end(), arguments.begin(), arguments.end());
        return out;
    }
    static void close_fd(int& fd) {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }

    // Reads what is available, waiting until `until` for something; false once nothing more can come in time.
    bool read_some(std::chrono::steady_clock::time_point until) {
        if (ended_) return false;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd fd{stdout_, POLLIN, 0};
        const int ready = ::poll(&fd, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
        if (ready < 0 && errno == EINTR) return true;
        if (ready <= 0) return false;
        char buffer[4096];
        const ssize_t n = ::read(stdout_, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) return true;
        if (n <= 0) {
            ended_ = true;
            return false;
        }
        output_.append(buffer, static_cast<std::size_t>(n));
        return true;
    }

    pid_t pid_ = -1;
    int stdin_ = -1;
    int stdout_ = -1;
    bool ended_ = false;
    std::optional<int> status_;
    std::string output_;
};

}  // namespace krmx::testing
