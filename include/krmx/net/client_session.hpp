#pragma once
// krmx::net::ClientSession: the client's side of the Krmx session layer (docs/protocol.md, section 1) as a
// state machine without I/O: the frames a client sends to link, unlink and leave, and what the server's
// `krmx/*` frames mean for it. krmx::net::WebSocketClient runs it over a socket and krmx::testing::Hub's
// clients in process, so both follow the same rules, those of @krmx/client:
// - linked on `krmx/accepted` (before the history that follows), unlinked on its own `krmx/unlinked` or
//   when the connection is lost;
// - custom messages (types outside `krmx/`) reach on_message only while linked (@krmx/client drops the
//   others), unparsable frames are counted and ignored;
// - rejections are reported with the server's reason;
// - the users the server told of, in the order it did.
// The link request names the features this client reads beyond Krmx 0.5 (`features`): by default
// `stream/history`, so that servers send it histories in pages rather than one message per event, and
// `stream/snapshot`, so that a late joiner may get the state at a position instead of the events before it.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::net {

/// A user as a client knows it from the session frames.
struct ClientUser {
    std::string username;
    bool linked = false;
};

struct ClientSessionOptions {
    /// The version sent in krmx/link (servers check its major.minor).
    std::string version = "0.5.4";
    /// What the client reads beyond Krmx 0.5, sent as the link request's `features` (left out when empty).
    std::vector<std::string> features = {"stream/history", "stream/snapshot"};
};

struct ClientSessionStatistics {
    std::uint64_t rejections = 0;
    std::uint64_t ignored_messages = 0;  ///< custom messages while not linked, unparsable frames
};

class ClientSession {
  public:
    explicit ClientSession(ClientSessionOptions options = {}) : options_(std::move(options)) {}
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    /// The frame that asks to link as `username` (the acceptance then links as it).
    [[nodiscard]] std::string link_frame(std::string username, const std::optional<std::string>& auth = std::nullopt) {
        std::string out = R"({"type":"krmx/link","payload":{"username":)";
        krmx::detail::append_json_string(out, username);
        out += R"(,"version":)";
        krmx::detail::append_json_string(out, options_.version);
        if (auth) {
            out += R"(,"auth":)";
            krmx::detail::append_json_string(out, *auth);
        }
        if (!options_.features.empty()) {
            out += R"(,"features":[)";
            for (std::size_t i = 0; i < options_.features.size(); ++i) {
                if (i > 0) out += ',';
                krmx::detail::append_json_string(out, options_.features[i]);
            }
            out += ']';
        }
        out += "}}";
        linking_ = std::move(username);
        last_rejection_.reset();
        return out;
    }
    [[nodiscard]] static std::string unlink_frame() { return R"({"type":"krmx/unlink"})"; }
    [[nodiscard]] static std::string leave_frame() { return R"({"type":"krmx/leave"})"; }

    /// One frame from the server.
    void receive(std::string_view text) {
        if (!reader_.read(text).empty()) {
            ++statistics_.ignored_messages;
            return;
        }
        const Message& message = reader_.message();
        const std::string_view type = message.type();
        if (!type.starts_with("krmx/")) {
            if (!linked()) {
                ++statistics_.ignored_messages;
                return;
            }
            on_message_.emit(text);
            return;
        }
        session_frames_.emplace_back(text);
        const auto field = [&message](std::string_view key) -> std::string {
            const auto* member = message.payload_is_object() ? message.field(key) : nullptr;
            return member ? krmx::detail::json_string_value(member->value).value_or(std::string{}) : std::string{};
        };
        if (type == "krmx/accepted") {
            username_ = linking_;
            on_link_.emit(*username_);
        } else if (type == "krmx/rejected") {
            ++statistics_.rejections;
            last_rejection_ = field("reason");
            on_rejected_.emit(*last_rejection_);
        } else if (type == "krmx/joined") {
            const auto name = field("username");
            if (!find(name)) users_.push_back(ClientUser{name, false});
        } else if (type == "krmx/linked") {
            if (auto* u = find(field("username"))) u->linked = true;
        } else if (type == "krmx/unlinked") {
            const auto name = field("username");
            if (auto* u = find(name)) u->linked = false;
            if (username_ && name == *username_) {
                username_.reset();
                users_.clear();
                on_unlink_.emit();
            }
        } else if (type == "krmx/left") {
            const auto name = field("username");
            std::erase_if(users_, [&name](const ClientUser& u) { return u.username == name; });
        }
    }

    /// The connection is gone: unlinked (when it was), users forgotten.
    void lost() {
        users_.clear();
        const bool was_linked = username_.has_value();
        username_.reset();
        if (was_linked) on_unlink_.emit();
    }

    [[nodiscard]] bool linked() const noexcept { return username_.has_value(); }
    /// The username this client is linked as.
    [[nodiscard]] const std::optional<std::string>& username() const noexcept { return username_; }
    /// The reason of the last `krmx/rejected`, until the next link request.
    [[nodiscard]] const std::optional<std::string>& last_rejection() const noexcept { return last_rejection_; }
    /// Users as the session frames told this client, in the order it learned of them.
    [[nodiscard]] const std::vector<ClientUser>& users() const noexcept { return users_; }
    /// Every `krmx/*` frame received, in order (for tests and tools); clear it when you like.
    [[nodiscard]] std::vector<std::string>& session_frames() noexcept { return session_frames_; }
    [[nodiscard]] const ClientSessionStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] const ClientSessionOptions& options() const noexcept { return options_; }
    /// How many times one of this session's callbacks threw (counted and skipped).
    [[nodiscard]] std::uint64_t callback_errors() const noexcept {
        return on_link_.errors() + on_unlink_.errors() + on_message_.errors() + on_rejected_.errors();
    }

    /// `f(std::string_view username)`: linked (on `krmx/accepted`).
    Subscription on_link(UserCallback f) { return on_link_.connect(std::move(f)); }
    /// `f()`: unlinked, or the connection was lost while linked.
    Subscription on_unlink(NoticeCallback f) { return on_unlink_.connect(std::move(f)); }
    /// `f(std::string_view text)`: a custom message while linked.
    Subscription on_message(MessageCallback f) { return on_message_.connect(std::move(f)); }
    /// `f(std::string_view reason)`: a link request was rejected.
    Subscription on_rejected(std::function<void(std::string_view)> f) { return on_rejected_.connect(std::move(f)); }

  private:
    ClientUser* find(std::string_view name) {
        for (auto& u : users_) {
            if (u.username == name) return &u;
        }
        return nullptr;
    }

    ClientSessionOptions options_;
    MessageReader reader_;
    std::string linking_;
    std::optional<std::string> username_;
    std::optional<std::string> last_rejection_;
    std::vector<ClientUser> users_;
    std::vector<std::string> session_frames_;
    ClientSessionStatistics statistics_;
    krmx::detail::Signal<std::string_view> on_link_;
    krmx::detail::Signal<> on_unlink_;
    krmx::detail::Signal<std::string_view> on_message_;
    krmx::detail::Signal<std::string_view> on_rejected_;
};

}  // namespace krmx::net
