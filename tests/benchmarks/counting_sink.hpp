#pragma once
// Where a benchmark's session frames go: counted, as a socket layer would copy them into connections' buffers.
#include <cstdint>

#include <krmx/net/session.hpp>

struct CountingSink final : krmx::net::SessionSink {
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    void send(krmx::net::ConnectionId, krmx::net::SharedText text) override {
        ++frames;
        bytes += text->size();
    }
    void close(krmx::net::ConnectionId, krmx::net::CloseReason) override {}
};
