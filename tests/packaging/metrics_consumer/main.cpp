// A consumer of the installed package's krmx::metrics target (prometheus-cpp found through krmx's config).
#include <cstdio>
#include <string>

#include <krmx/net/metrics.hpp>

int main() {
    krmx::net::WebSocketServer server{{.log = {}}};
    krmx::net::Metrics metrics{server};
    const std::string text = metrics.render();
    const bool ok = text.find("# TYPE krmx_server_frames_in_total counter") != std::string::npos;
    std::printf("metrics=%s\n", ok ? "ok" : "missing");
    return ok ? 0 : 1;
}
