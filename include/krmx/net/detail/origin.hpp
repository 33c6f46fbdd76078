#pragma once
// The Origin check of the WebSocket upgrade. A browser sends the origin of the page that opens a WebSocket,
// and lets any page open one to any server, with the user's cookies: the server must check the Origin
// itself. Clients that are not browsers send none.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace krmx::net::detail {

[[nodiscard]] inline std::string ascii_lower(std::string_view text) {
    std::string out{text};
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

/// `host[:port]`, as in a Host header or after an origin's `scheme://`; the host in lower case, an IPv6
/// literal with its brackets.
struct Authority {
    std::string host;
    std::optional<std::uint16_t> port;

    [[nodiscard]] static std::optional<Authority> parse(std::string_view text) {
        std::size_t host_end = 0;
        if (!text.empty() && text.front() == '[') {
            host_end = text.find(']');
            if (host_end == std::string_view::npos) return std::nullopt;
            ++host_end;
        } else {
            host_end = std::min(text.find(':'), text.size());
        }
        const auto host = text.substr(0, host_end);
        if (host.empty() || host.find_first_of(" \t/?#@\\") != std::string_view::npos) return std::nullopt;
        Authority a{ascii_lower(host), std::nullopt};
        const auto rest = text.substr(host_end);
        if (rest.empty()) return a;
        const auto digits = rest.substr(1);
        std::uint16_t port = 0;
        const auto end = digits.data() + digits.size();
        const auto [p, e] = std::from_chars(digits.data(), end, port);
        if (rest.front() != ':' || digits.empty() || e != std::errc{} || p != end) return std::nullopt;
        a.port = port;
        return a;
    }
};

/// The port a scheme means when none is written (nothing for schemes without one).
[[nodiscard]] inline std::optional<std::uint16_t> default_port(std::string_view scheme) {
    if (scheme == "http" || scheme == "ws") return 80;
    if (scheme == "https" || scheme == "wss") return 443;
    return std::nullopt;
}

/// A serialised origin, `scheme://host[:port]` (no path, not even `/`). Scheme and host compare
/// case-insensitively, ports exactly, an omitted default port as that port.
struct WebOrigin {
    std::string scheme;
    std::string host;
    std::optional<std::uint16_t> port;  // with the scheme's default filled in

    [[nodiscard]] static std::optional<WebOrigin> parse(std::string_view text) {
        const auto separator = text.find("://");
        if (separator == std::string_view::npos || separator == 0) return std::nullopt;
        const auto scheme = ascii_lower(text.substr(0, separator));
        if (scheme.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789+-.") != std::string::npos) {
            return std::nullopt;
        }
        auto authority = Authority::parse(text.substr(separator + 3));
        if (!authority) return std::nullopt;
        const auto port = authority->port ? authority->port : default_port(scheme);
        return WebOrigin{scheme, std::move(authority->host), port};
    }

    friend bool operator==(const WebOrigin&, const WebOrigin&) = default;
};

/// Which Origin headers may open a WebSocket (see WebSocketServerOptions::allowed_origins).
class OriginPolicy {
  public:
    /// `allowed`: origins, "*" (any) or "null"; empty: `same_origin` (the server serves its own page) or any.
    /// Throws std::invalid_argument for an entry that is none of these.
    OriginPolicy(const std::vector<std::string>& allowed, bool same_origin) {
        if (allowed.empty()) {
            mode_ = same_origin ? Mode::same_origin : Mode::any;
            return;
        }
        mode_ = Mode::listed;
        for (const auto& entry : allowed) {
            if (entry == "*") {
                star_ = true;
            } else if (entry == "null") {
                null_ = true;
            } else if (auto origin = WebOrigin::parse(entry)) {
                origins_.push_back(std::move(*origin));
            } else {
                throw std::invalid_argument(
                    "allowed_origins: \"" + entry +
                    "\" is not an origin (scheme://host[:port], no path), \"*\" or \"null\"");
            }
        }
    }

    /// False when every origin is allowed (no static files, no list): nothing to look at.
    [[nodiscard]] bool checks() const noexcept { return mode_ != Mode::any; }

    /// `origin`: the request's Origin header; `host`: its Host header.
    [[nodiscard]] bool allows(std::string_view origin, std::string_view host) const {
        if (mode_ == Mode::any) return true;
        // An opaque origin (sandboxed frame, file: page): any page can make one, so only when listed.
        if (origin == "null") return null_;
        if (star_) return true;
        const auto parsed = WebOrigin::parse(origin);
        if (!parsed) return false;
        if (mode_ == Mode::listed) return std::count(origins_.begin(), origins_.end(), *parsed) > 0;
        // Same origin: the page was loaded from this very host[:port] (directly, or through a proxy that
        // keeps the Host header, possibly over TLS).
        if (parsed->scheme != "http" && parsed->scheme != "https") return false;
        const auto authority = Authority::parse(host);
        if (!authority || authority->host != parsed->host) return false;
        return (authority->port ? authority->port : default_port(parsed->scheme)) == parsed->port;
    }

  private:
    enum class Mode { any, same_origin, listed };
    Mode mode_ = Mode::any;
    bool star_ = false;
    bool null_ = false;
    std::vector<WebOrigin> origins_;
};

}  // namespace krmx::net::detail
