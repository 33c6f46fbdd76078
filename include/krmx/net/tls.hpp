#pragma once
// TLS for krmx::net::WebSocketServer and krmx::net::WebSocketClient (https and wss), over OpenSSL through
// Boost.Asio's SSL streams. Needs the krmx::tls CMake target (krmx::websocket plus OpenSSL::SSL). Only this
// header includes OpenSSL: a server whose TLS ends in a proxy in front of it never builds or links it.
//
//   krmx::net::WebSocketServer server{{.port = 8443, .tls = krmx::net::tls_files("cert.pem", "key.pem")}};
//   ...
//   auto reloaded = server.reload_tls();  // from any thread, e.g. on SIGHUP; .get() is true when it worked
//
//   krmx::net::WebSocketClient client{{.tls = krmx::net::tls_client({.ca_file = "ca.pem"})}};
//   client.connect_url("wss://127.0.0.1:8443/");
//
// Server: the certificate file is PEM and may hold the chain after the certificate (leaf first); the key is
// a PEM private key without a passphrase. Both are read when tls_files() is called (std::invalid_argument
// naming the file when one is unreadable, invalid or the key does not belong to the certificate) and again on
// WebSocketServer::reload_tls(), or by themselves every TlsServerOptions::reload_interval when their
// modification times change. A reload makes a new SSL context for new connections; open connections keep the
// one they began with (each holds it), so a renewal never breaks a game in progress. TLS 1.2 and newer.
//
// Client: the server's certificate must chain to `ca_file` (or to the system's certificate authorities when it
// is empty) and name the host connected to (a DNS name, or an IP address in the certificate's IP SANs); the
// host name goes out as SNI.

// krmx/net/separate_compilation.hpp compiles the TLS connections too when this header came first.
#define KRMX_NET_TLS_HPP

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "krmx/net/websocket_client.hpp"
#include "krmx/net/websocket_server.hpp"

namespace krmx::net {

struct TlsServerOptions {
    /// How often the server looks at the files' modification times (on its tick) and reloads them when
    /// they changed (a certificate renewed by certbot or a secret mounted by Kubernetes). Zero: only on
    /// WebSocketServer::reload_tls().
    Duration reload_interval = Duration::zero();
};

struct TlsClientOptions {
    /// PEM file with the certificate authorities to trust; empty: the system's (OpenSSL's default paths).
    std::filesystem::path ca_file = {};
    /// Verify the server's certificate chain and that it names the host. Off: any certificate is taken,
    /// which an attacker in the middle can present too; for tests of your own only.
    bool verify_peer = true;
};

namespace detail {

namespace ssl = boost::asio::ssl;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

#ifdef KRMX_NET_SEPARATE_COMPILATION
// Compiled once, in the translation unit that includes krmx/net/separate_compilation.hpp after this header.
extern template class BasicServerConnection<TlsStream>;
extern template class BasicClientConnection<TlsStream>;
#endif

// OpenSSL's reason for the last failure, or the error code's message.
[[nodiscard]] inline std::string tls_reason(const boost::system::error_code& ec) {
    std::string reason = ec.message();
    if (const unsigned long e = ERR_get_error(); e != 0) {
        char text[256];
        ERR_error_string_n(e, text, sizeof text);
        reason = text;
    }
    ERR_clear_error();
    return reason;
}

[[nodiscard]] inline std::optional<TlsLoadError> read_pem(const std::filesystem::path& file, std::string& out) {
    std::ifstream in{file, std::ios::binary};
    if (!in) return TlsLoadError{file.string(), "cannot be read"};
    out.assign(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
    if (in.bad()) return TlsLoadError{file.string(), "cannot be read"};
    return std::nullopt;
}

// A server context with the certificate chain and key of these files, or why not.
[[nodiscard]] inline std::optional<TlsLoadError> load_server_context(const std::filesystem::path& certificate,
                                                                     const std::filesystem::path& key,
                                                                     std::shared_ptr<ssl::context>& out) {
    std::string chain_pem;
    std::string key_pem;
    if (auto error = read_pem(certificate, chain_pem)) return error;
    if (auto error = read_pem(key, key_pem)) return error;
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    boost::system::error_code ec;
    ERR_clear_error();
    context->use_certificate_chain(boost::asio::buffer(chain_pem), ec);
    if (ec) return TlsLoadError{certificate.string(), "not a PEM certificate (chain): " + tls_reason(ec)};
    context->use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec);
    if (ec) return TlsLoadError{key.string(), "not a PEM private key for " + certificate.string() + ": " + tls_reason(ec)};
    if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
        return TlsLoadError{key.string(), "does not belong to the certificate in " + certificate.string() + ": " +
                                              tls_reason({})};
    }
    out = std::move(context);
    return std::nullopt;
}

// Holds a connection's SSL context; a base before the connection's stream, so that it outlives the stream.
struct TlsContextHolder {
    std::shared_ptr<ssl::context> tls_context;
};

// A server connection over TLS: the TLS handshake, then the HTTP request and everything else as a plain one.
class TlsServerConnection final : private TlsContextHolder, public BasicServerConnection<TlsStream> {
  public:
    TlsServerConnection(WebSocketServerCore& core, tcp::socket socket, IpAddress peer, std::string address,
                        std::shared_ptr<ssl::context> context)
        : TlsContextHolder{std::move(context)},
          BasicServerConnection<TlsStream>(core, std::move(peer), std::move(address), std::move(socket),
                                           *tls_context) {}

    void start() override {
        // One deadline for the TLS handshake and the HTTP request after it: a peer that stalls in either
        // (half a ClientHello, say) is dropped within handshake_timeout.
        begin();
        ws_.next_layer().next_layer().async_handshake(
            ssl::stream_base::server,
            [self = std::static_pointer_cast<TlsServerConnection>(shared_from_this())](beast::error_code ec) {
                self->on_handshake(ec);
            });
    }

  private:
    void on_handshake(beast::error_code ec) {
        if (dead_) return;
        if (ec) {
            auto& stats = core_->statistics();
            ++stats.tls_handshake_failures;
            if (ec == beast::error::timeout) ++stats.tls_handshake_timeouts;
            ERR_clear_error();  // OpenSSL's queue is per thread: leave nothing for the next connection
            finish({});
            return;
        }
        read_request();
    }
};

class FileTlsAcceptor final : public TlsAcceptor {
  public:
    FileTlsAcceptor(std::filesystem::path certificate, std::filesystem::path key, TlsServerOptions options)
        : certificate_(std::move(certificate)), key_(std::move(key)), options_(options) {
        stamps_ = stamps();
        if (auto error = load_server_context(certificate_, key_, context_)) {
            throw std::invalid_argument("krmx TLS: " + error->file + ": " + error->error);
        }
    }

    [[nodiscard]] std::shared_ptr<ServerConnection> connection(WebSocketServerCore& core, tcp::socket socket,
                                                               IpAddress peer, std::string address) override {
        return std::make_shared<TlsServerConnection>(core, std::move(socket), std::move(peer), std::move(address),
                                                     context_);
    }
    [[nodiscard]] std::optional<TlsLoadError> reload() override {
        stamps_ = stamps();  // a failed try is not repeated until a file changes again
        std::shared_ptr<ssl::context> context;
        if (auto error = load_server_context(certificate_, key_, context)) return error;
        context_ = std::move(context);
        return std::nullopt;
    }
    [[nodiscard]] bool changed() override { return stamps() != stamps_; }
    [[nodiscard]] Duration reload_interval() const noexcept override { return options_.reload_interval; }
    [[nodiscard]] std::string certificate_file() const override { return certificate_.string(); }

  private:
    using Stamp = std::optional<std::filesystem::file_time_type>;
    [[nodiscard]] std::pair<Stamp, Stamp> stamps() const {
        const auto stamp = [](const std::filesystem::path& p) -> Stamp {
            std::error_code ec;
            const auto t = std::filesystem::last_write_time(p, ec);
            if (ec) return std::nullopt;
            return t;
        };
        return {stamp(certificate_), stamp(key_)};
    }

    std::filesystem::path certificate_;
    std::filesystem::path key_;
    TlsServerOptions options_;
    std::shared_ptr<ssl::context> context_;
    std::pair<Stamp, Stamp> stamps_;
};

// A client connection over TLS: SNI and the host name check, the TLS handshake, then the upgrade.
class TlsClientConnection final : private TlsContextHolder, public BasicClientConnection<TlsStream> {
  public:
    TlsClientConnection(boost::asio::io_context& io, std::shared_ptr<ssl::context> context, bool verify)
        : TlsContextHolder{std::move(context)}, BasicClientConnection<TlsStream>(io, *tls_context), verify_(verify) {}

    void async_handshake(const std::string& host, const std::string& host_header, const std::string& target,
                         Done done) override {
        auto& stream = ws_.next_layer();
        boost::system::error_code ec;
        (void)boost::asio::ip::make_address(host, ec);
        const bool literal = !ec;
        // SNI carries names only (RFC 6066), never IP addresses.
        if (!literal) (void)SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
        if (verify_) {
            stream.set_verify_mode(ssl::verify_peer);
            stream.set_verify_callback(ssl::host_name_verification(host));
        } else {
            stream.set_verify_mode(ssl::verify_none);
        }
        stream.async_handshake(ssl::stream_base::client, [this, host_header, target, done = std::move(done)](
                                                             boost::beast::error_code e) mutable {
            if (e) {
                ERR_clear_error();
                done(e);
                return;
            }
            BasicClientConnection<TlsStream>::async_handshake({}, host_header, target, std::move(done));
        });
    }

  private:
    bool verify_;
};

class ClientTlsConnector final : public TlsConnector {
  public:
    explicit ClientTlsConnector(const TlsClientOptions& options)
        : context_(std::make_shared<ssl::context>(ssl::context::tls_client)), verify_(options.verify_peer) {
        SSL_CTX_set_min_proto_version(context_->native_handle(), TLS1_2_VERSION);
        boost::system::error_code ec;
        if (!options.ca_file.empty()) {
            std::string pem;
            if (auto error = read_pem(options.ca_file, pem)) {
                throw std::invalid_argument("krmx TLS: " + error->file + ": " + error->error);
            }
            context_->add_certificate_authority(boost::asio::buffer(pem), ec);
            if (ec) {
                throw std::invalid_argument("krmx TLS: " + options.ca_file.string() +
                                            ": not a PEM certificate: " + tls_reason(ec));
            }
        } else {
            context_->set_default_verify_paths(ec);
            if (ec) throw std::invalid_argument("krmx TLS: the system's certificate authorities: " + tls_reason(ec));
        }
    }
    [[nodiscard]] std::unique_ptr<ClientConnection> connection(boost::asio::io_context& io) override {
        return std::make_unique<TlsClientConnection>(io, context_, verify_);
    }

  private:
    std::shared_ptr<ssl::context> context_;
    bool verify_;
};

}  // namespace detail

/// TLS for WebSocketServerOptions::tls from a PEM certificate (chain) file and a PEM key file, read now:
/// throws std::invalid_argument naming the file when one is unreadable, invalid, or the key does not match.
[[nodiscard]] inline std::shared_ptr<detail::TlsAcceptor> tls_files(std::filesystem::path certificate_chain,
                                                                  std::filesystem::path private_key,
                                                                  TlsServerOptions options = {}) {
    return std::make_shared<detail::FileTlsAcceptor>(std::move(certificate_chain), std::move(private_key), options);
}

/// TLS for WebSocketClientOptions::tls. Throws std::invalid_argument when ca_file cannot be read or used.
[[nodiscard]] inline std::shared_ptr<detail::TlsConnector> tls_client(const TlsClientOptions& options = {}) {
    return std::make_shared<detail::ClientTlsConnector>(options);
}

}  // namespace krmx::net
