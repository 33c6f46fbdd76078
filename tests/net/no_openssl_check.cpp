// The WebSocket headers never bring in OpenSSL (only krmx/net/tls.hpp does): a server behind a proxy that ends
// TLS builds without its headers and libraries. This translation unit fails to compile if one of them does.
#include <krmx/net/internet_facing.hpp>
#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>

#if defined(OPENSSL_VERSION_NUMBER) || defined(OPENSSL_SSL_H) || defined(HEADER_SSL_H) || defined(BOOST_ASIO_SSL_HPP)
#error "a WebSocket header includes OpenSSL or Asio's SSL support"
#endif
