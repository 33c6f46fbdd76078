#pragma once
// Compile the WebSocket connections once per program instead of once per translation unit. Each .cpp that
// includes websocket_server.hpp or websocket_client.hpp instantiates Beast's WebSocket and HTTP code for
// them, which is most of what those files cost to compile (about half of a small server's compile time
// with g++). A program of several such files can pay that once:
//
//   1. compile every file of the program with KRMX_NET_SEPARATE_COMPILATION defined (CMake:
//      target_compile_definitions(game PRIVATE KRMX_NET_SEPARATE_COMPILATION));
//   2. include this header in exactly one of its .cpp files; when the program uses TLS, include
//      krmx/net/tls.hpp before it there, and it compiles the TLS connections too.
//
// Without step 2 the link fails with undefined BasicServerConnection/BasicClientConnection members. Nothing
// else changes: the same code runs, it is only compiled in one place. Without the macro (the default) every
// header stays self-sufficient, as a header-only library's are.

#include "krmx/net/websocket_client.hpp"
#include "krmx/net/websocket_server.hpp"

#ifndef KRMX_NET_SEPARATE_COMPILATION
#error "krmx/net/separate_compilation.hpp: define KRMX_NET_SEPARATE_COMPILATION for every file of the program"
#endif

template class krmx::net::detail::BasicServerConnection<boost::beast::tcp_stream>;
template class krmx::net::detail::BasicClientConnection<boost::beast::tcp_stream>;
#ifdef KRMX_NET_TLS_HPP
template class krmx::net::detail::BasicServerConnection<krmx::net::detail::TlsStream>;
template class krmx::net::detail::BasicClientConnection<krmx::net::detail::TlsStream>;
#endif
