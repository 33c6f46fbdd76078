// The WebSocket connections (with TLS where krmx::tls is built), compiled once for the tests and examples
// (cmake/krmx_dev.cmake).
#ifdef KRMX_NET_CODE_TLS
#include <krmx/net/tls.hpp>
#endif
#include <krmx/net/separate_compilation.hpp>
