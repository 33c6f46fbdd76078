#pragma once
// A throw-away PostgreSQL server for tests and benchmarks: `initdb` into a fresh temporary folder, then
// `pg_ctl start` listening only on a unix socket inside that folder (no TCP at all), stopped and deleted
// when the object goes away. PostgreSQL refuses to run as root, so when we are root the server runs as the
// `postgres` account (`runuser -u postgres --`) and owns the folder. Every step has a deadline.
//
// A test that crashes (abort, SIGKILL) runs no destructor, so a watchdog process started next to the server
// stops it and deletes the folder once the test process is gone.
//
// One server per executable (`shared_postgres()`); test cases isolate themselves with their own schema
// (`unique_postgres_schema()`), which costs nothing, rather than with a server or database of their own.

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace krmx::testing {

class PostgresServer {
  public:
    struct Options {
        /// Off for tests: the server is thrown away, and fsync would only make the suite slower.
        bool fsync = false;
        std::chrono::seconds deadline{60};
    };

    PostgresServer() : PostgresServer(Options{}) {}
    explicit PostgresServer(Options options) : options_(options) {
        bin_ = find_bin();
        std::random_device device;
        // Short: a unix socket path must fit in 107 bytes.
        dir_ = std::filesystem::path{"/tmp"} /
               ("krmx-pg-" + std::to_string(::getpid()) + "-" + std::to_string(device() % 1000000));
        std::filesystem::create_directories(dir_);
        try {
            start();
        } catch (...) {
            stop_and_delete();
            throw;
        }
    }
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;
    ~PostgresServer() { stop_and_delete(); }

    /// A libpq connection string for `database` as the superuser `postgres`.
    [[nodiscard]] std::string conninfo(const std::string& database = "postgres") const {
        return "host=" + dir_.string() + " port=" + std::to_string(port) +
               " user=postgres dbname=" + database + " connect_timeout=10";
    }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }
    /// The server's log, for a failing test to print.
    [[nodiscard]] std::string log() const {
        std::ifstream in{dir_ / "server.log"};
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    static constexpr int port = 5432;  // only names the socket file; nothing listens on TCP

  private:
    static std::filesystem::path find_bin() {
        if (const char* bin = std::getenv("KRMX_POSTGRES_BIN"); bin != nullptr && *bin != '\0') return bin;
        std::filesystem::path best;
        std::error_code error;
        for (const auto& entry : std::filesystem::directory_iterator{"/usr/lib/postgresql", error}) {
            const auto candidate = entry.path() / "bin";
            if (std::filesystem::exists(candidate / "initdb") && candidate > best) best = candidate;
        }
        if (best.empty()) {
            throw std::runtime_error(
                "no PostgreSQL server found under /usr/lib/postgresql (install the Debian package "
                "`postgresql`, or point KRMX_POSTGRES_BIN at the folder holding initdb and pg_ctl)");
        }
        return best;
    }

    // Runs a program to its end within the deadline, as `postgres` when we are root; throws with its output.
    void run(const std::vector<std::string>& command) const {
        std::vector<std::string> argv;
        if (::geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
        argv.insert(argv.end(), command.begin(), command.end());
        const auto output = dir_ / "command.log";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        pid_t pid = -1;
        const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (spawned != 0) throw std::system_error(spawned, std::generic_category(), "posix_spawn " + argv[0]);
        const auto until = std::chrono::steady_clock::now() + options_.deadline;
        int status = 0;
        for (;;) {
            const pid_t done = ::waitpid(pid, &status, WNOHANG);
            if (done == pid) break;
            if (done < 0 && errno != EINTR)
                throw std::system_error(errno, std::generic_category(), "waitpid");
            if (std::chrono::steady_clock::now() > until) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                throw std::runtime_error(command[0] + " did not finish within its deadline");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::ifstream in{output};
            std::stringstream text;
            text << in.rdbuf();
            throw std::runtime_error(command[0] + " failed: " + text.str());
        }
    }

    void start() {
        if (::geteuid() == 0) {
            const passwd* account = ::getpwnam("postgres");
            if (account == nullptr) {
                throw std::runtime_error(
                    "running as root, but there is no `postgres` account to run the "
                    "test server as (install the Debian package `postgresql`)");
            }
            if (::chown(dir_.c_str(), account->pw_uid, account->pw_gid) != 0) {
                throw std::system_error(errno, std::generic_category(), "chown " + dir_.string());
            }
        }
        ::chmod(dir_.c_str(), 0700);
        const std::string data = (dir_ / "data").string();
        run({(bin_ / "initdb").string(), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E",
             "UTF8", "--locale=C"});
        std::string settings = "-k " + dir_.string() + " -p " + std::to_string(port) +
                               " -c listen_addresses= -c max_connections=400 -c shared_buffers=64MB"
                               " -c max_wal_size=1GB -c log_min_messages=warning";
        if (!options_.fsync) settings += " -c fsync=off -c full_page_writes=off";
        started_ = true;
        const int timeout = static_cast<int>(options_.deadline.count());
        run({(bin_ / "pg_ctl").string(), "-D", data, "-l", (dir_ / "server.log").string(), "-w", "-t",
             std::to_string(timeout), "-o", settings, "start"});
        start_watchdog(data);
    }

    // A detached shell that waits for this process to end, then stops the server and removes the folder.
    void start_watchdog(const std::string& data) {
        const std::string as = ::geteuid() == 0 ? "/usr/sbin/runuser -u postgres -- " : "";
        const std::string script = "while kill -0 " + std::to_string(::getpid()) +
                                   " 2>/dev/null; do sleep 1; done; " + as + (bin_ / "pg_ctl").string() +
                                   " -D '" + data + "' -m immediate -w -t 30 stop >/dev/null 2>&1; rm -rf '" +
                                   dir_.string() + "'";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);  // not killed with our process group
        std::vector<std::string> argv{"/bin/sh", "-c", script};
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        if (::posix_spawn(&watchdog_, args[0], &actions, &attributes, args.data(), environ) != 0)
            watchdog_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
    }

    void stop_and_delete() noexcept {
        try {
            if (started_) {
                run({(bin_ / "pg_ctl").string(), "-D", (dir_ / "data").string(), "-m", "immediate", "-w",
                     "-t", "30", "stop"});
            }
        } catch (...) {
            // The watchdog stops it when we are gone.
        }
        started_ = false;
        if (watchdog_ > 0) {
            ::kill(watchdog_, SIGKILL);
            int status = 0;
            ::waitpid(watchdog_, &status, 0);
            watchdog_ = -1;
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    Options options_;
    std::filesystem::path bin_;
    std::filesystem::path dir_;
    bool started_ = false;
    pid_t watchdog_ = -1;
};

/// The one server of this executable, started on first use and stopped at exit.
inline PostgresServer& shared_postgres() {
    static PostgresServer server;
    return server;
}

/// A schema name no other test case of this run uses: test cases share the server, not their tables.
inline std::string unique_postgres_schema(const std::string& prefix = "t") {
    static std::atomic<int> counter{0};
    return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

}  // namespace krmx::testing
