#pragma once
// Client addresses for the WebSocket server's per-address limits: the key one address counts under, the
// networks of trusted proxies, and the client behind them from X-Forwarded-For.

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <boost/asio/ip/address.hpp>
#include <boost/system/error_code.hpp>

namespace krmx::net::detail {

using IpAddress = boost::asio::ip::address;

/// An IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer) as the IPv4 address it is.
[[nodiscard]] inline IpAddress unmapped(const IpAddress& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
    }
    return a;
}

/// The key connections from `a` count under: an IPv4 address as text, an IPv6 address by its /64 (one
/// subscriber, or one attacker, usually holds a whole /64: counting single IPv6 addresses limits nothing).
[[nodiscard]] inline std::string address_key(const IpAddress& address) {
    const auto a = unmapped(address);
    if (a.is_v4()) return a.to_v4().to_string();
    auto bytes = a.to_v6().to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), static_cast<unsigned char>(0));
    return boost::asio::ip::address_v6{bytes}.to_string() + "/64";
}

/// An address as it may appear in X-Forwarded-For: bare, `[v6]`, `[v6]:port` or `v4:port`, spaces around
/// ignored. Mapped addresses come back as IPv4. Nothing for anything else ("unknown", obfuscated names).
[[nodiscard]] inline std::optional<IpAddress> parse_address(std::string_view text) {
    constexpr std::string_view space = " \t";
    const auto first = text.find_first_not_of(space);
    if (first == std::string_view::npos) return std::nullopt;
    text = text.substr(first, text.find_last_not_of(space) - first + 1);
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        const auto rest = text.substr(close + 1);
        if (!rest.empty() && (rest.front() != ':' || rest.size() == 1 ||
                              rest.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
            return std::nullopt;
        }
        text = text.substr(1, close - 1);
    } else if (const auto colon = text.find(':');
               colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
        // One colon: IPv4 with a port (an IPv6 address has at least two).
        const auto port = text.substr(colon + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos)
            return std::nullopt;
        text = text.substr(0, colon);
    }
    boost::system::error_code ec;
    const auto a = boost::asio::ip::make_address(std::string{text}, ec);
    if (ec) return std::nullopt;
    return unmapped(a);
}

/// An address or a CIDR network ("10.0.0.0/8", "2001:db8::/32", "::1").
class IpNetwork {
  public:
    /// Nothing when `text` is neither an address nor `address/prefix` with a prefix that fits.
    [[nodiscard]] static std::optional<IpNetwork> parse(std::string_view text) {
        const auto slash = text.find('/');
        const std::string address_text{text.substr(0, slash)};
        boost::system::error_code ec;
        // Not unmapped: "::ffff:10.0.0.0/104" is written as an IPv6 network, its prefix counts 128 bits.
        const auto a = boost::asio::ip::make_address(address_text, ec);
        if (ec || address_text.find_first_of(" \t%") != std::string::npos) return std::nullopt;
        const unsigned bits = a.is_v4() ? 32 : 128;
        unsigned prefix = bits;
        if (slash != std::string_view::npos) {
            const auto digits = text.substr(slash + 1);
            const auto end = digits.data() + digits.size();
            const auto [p, e] = std::from_chars(digits.data(), end, prefix);
            if (digits.empty() || e != std::errc{} || p != end || prefix > bits) return std::nullopt;
        }
        // IPv4 networks as the IPv4-mapped IPv6 network: one comparison for both families.
        return IpNetwork{v6_bytes(a), a.is_v4() ? prefix + 96 : prefix};
    }

    [[nodiscard]] bool contains(const IpAddress& a) const {
        const auto bytes = v6_bytes(unmapped(a));
        const std::size_t whole = prefix_ / 8;
        if (!std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(whole), bytes_.begin())) {
            return false;
        }
        const unsigned rest = prefix_ % 8;
        if (rest == 0) return true;
        const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
        return (bytes[whole] & mask) == (bytes_[whole] & mask);
    }

  private:
    using Bytes = std::array<unsigned char, 16>;
    IpNetwork(Bytes bytes, unsigned prefix) : bytes_(bytes), prefix_(prefix) {}
    [[nodiscard]] static Bytes v6_bytes(const IpAddress& a) {
        using boost::asio::ip::v4_mapped;
        return a.is_v4() ? boost::asio::ip::make_address_v6(v4_mapped, a.to_v4()).to_bytes()
                         : a.to_v6().to_bytes();
    }

    Bytes bytes_;
    unsigned prefix_;
};

/// The client behind a chain of trusted proxies, from the X-Forwarded-For fields of a request that came
/// from one (`header`: the fields' values joined with ','). Each proxy appends the address it got the
/// request from, so the rightmost entry that is not a trusted proxy is the client; everything left of it
/// is what the client wrote itself, and is never looked at. When every entry is a trusted proxy: the
/// leftmost. Nothing when the list is empty or an entry up to the client is not an address: the chain
/// cannot be followed.
template <class IsTrusted>
[[nodiscard]] std::optional<IpAddress> forwarded_client(std::string_view header, const IsTrusted& trusted) {
    std::optional<IpAddress> last;
    while (!header.empty()) {
        const auto comma = header.rfind(',');
        const auto entry = comma == std::string_view::npos ? header : header.substr(comma + 1);
        header = comma == std::string_view::npos ? std::string_view{} : header.substr(0, comma);
        if (entry.find_first_not_of(" \t") == std::string_view::npos) continue;  // empty list elements
        const auto a = parse_address(entry);
        if (!a) return std::nullopt;
        if (!trusted(*a)) return a;
        last = a;
    }
    return last;
}

}  // namespace krmx::net::detail
