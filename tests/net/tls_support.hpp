#pragma once
// Throw-away certificates for the TLS tests, made with OpenSSL's API (no files of the repository, no openssl
// command): a CA and server certificates for 127.0.0.1 and localhost that it signs, each with a subject (CN)
// and serial of its own, written as PEM into a temporary folder that goes with the object. And a bare TLS
// client that reports the certificate the server presented.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace tls_support {

struct KeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct CertFree {
    void operator()(X509* c) const noexcept { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

inline void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string{"tls_support: "} + what);
}

inline Key make_key() {
    Key key{EVP_EC_gen("P-256")};
    check(key != nullptr, "EVP_EC_gen");
    return key;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/// A certificate for `key` named `common_name`, signed by `issuer` (self-signed when null).
inline Cert make_cert(const std::string& common_name, long serial, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                      bool ca, const std::string& names = "IP:127.0.0.1,DNS:localhost") {
    Cert cert{X509_new()};
    check(cert != nullptr, "X509_new");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("krmx-cpp tests"), -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                               -1, -1, 0);
    X509* signer = issuer ? issuer : cert.get();
    X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (ca) {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
        add_extension(cert.get(), signer, NID_subject_alt_name, names.c_str());
    }
    check(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return cert;
}

inline std::string pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out{data, static_cast<std::size_t>(n)};
    BIO_free(bio);
    return out;
}

inline std::string pem(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out{data, static_cast<std::size_t>(n)};
    BIO_free(bio);
    return out;
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
    // Through a temporary name and a rename, as a certificate renewal does: a reader sees old or new.
    const auto tmp = p.string() + ".tmp";
    {
        std::ofstream out{tmp, std::ios::binary | std::ios::trunc};
        out << text;
        check(static_cast<bool>(out), "write");
    }
    std::filesystem::rename(tmp, p);
}

/// A certificate authority and what it signs, in a temporary folder removed with this object.
class Pki {
  public:
    Pki() {
        std::random_device random;
        dir_ = std::filesystem::temp_directory_path() / ("krmx-tls-" + std::to_string(random()));
        std::filesystem::create_directories(dir_);
        ca_key_ = make_key();
        ca_ = make_cert("krmx test CA " + dir_.filename().string(), 1, ca_key_.get(), nullptr, nullptr, true);
        write_file(ca_file(), pem(ca_.get()));
    }
    Pki(const Pki&) = delete;
    Pki& operator=(const Pki&) = delete;
    ~Pki() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path ca_file() const { return dir_ / "ca.pem"; }
    [[nodiscard]] std::filesystem::path cert_file() const { return dir_ / "cert.pem"; }
    [[nodiscard]] std::filesystem::path key_file() const { return dir_ / "key.pem"; }

    /// A server certificate named `common_name` with `serial`, signed by this CA, written (chain: the
    /// certificate, then the CA's) to cert_file() and its key to key_file(), replacing what was there.
    /// `names`: its subject alternative names.
    void issue(const std::string& common_name, long serial, const std::string& names = "IP:127.0.0.1,DNS:localhost") {
        auto key = make_key();
        auto cert = make_cert(common_name, serial, key.get(), ca_.get(), ca_key_.get(), false, names);
        write_file(key_file(), pem(key.get()));
        write_file(cert_file(), pem(cert.get()) + pem(ca_.get()));
    }

  private:
    std::filesystem::path dir_;
    Key ca_key_;
    Cert ca_;
};

/// The subject CN of the certificate the server at 127.0.0.1:`port` presents (verified against `ca_file`).
inline std::string presented_name(std::uint16_t port, const std::filesystem::path& ca_file) {
    namespace ssl = boost::asio::ssl;
    boost::asio::io_context io;
    ssl::context ctx{ssl::context::tls_client};
    ctx.load_verify_file(ca_file.string());
    ctx.set_verify_mode(ssl::verify_peer);
    boost::beast::ssl_stream<boost::beast::tcp_stream> stream{io, ctx};
    boost::beast::get_lowest_layer(stream).expires_after(std::chrono::seconds{5});
    boost::beast::get_lowest_layer(stream).connect(
        boost::asio::ip::tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
    stream.handshake(ssl::stream_base::client);
    X509* cert = SSL_get1_peer_certificate(stream.native_handle());
    check(cert != nullptr, "no peer certificate");
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    X509_free(cert);
    boost::beast::error_code ignored;
    boost::beast::get_lowest_layer(stream).socket().close(ignored);
    return cn;
}

}  // namespace tls_support
