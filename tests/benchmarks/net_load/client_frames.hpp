#pragma once
// What the benchmark's raw-socket WebSocket clients (net_load.cpp, net_abuse.cpp) share: the opcodes they
// read and write, and the masked frames a client sends (RFC 6455).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace krmx_bench {

constexpr std::uint64_t max_frame_bytes = 64 * 1024 * 1024;  // longer is a corrupt header, not a Krmx message
constexpr unsigned char op_text = 0x1;
constexpr unsigned char op_close = 0x8;
constexpr unsigned char op_ping = 0x9;
constexpr unsigned char op_pong = 0xA;
// RFC 6455 wants a fresh random mask per frame so that intermediaries cannot be cache-poisoned by
// attacker-chosen bytes; on loopback to our own server a fixed non-zero key is enough (the server still
// has to unmask, as with a browser).
constexpr unsigned char mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

// Appends one FIN frame from client to server, masked as RFC 6455 requires of clients.
inline void append_masked_frame(std::string& to, unsigned char opcode, std::string_view payload) {
    to.push_back(static_cast<char>(0x80 | opcode));
    const std::uint64_t n = payload.size();
    if (n < 126) {
        to.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xffff) {
        to.push_back(static_cast<char>(0x80 | 126));
        for (int shift = 8; shift >= 0; shift -= 8) to.push_back(static_cast<char>((n >> shift) & 0xff));
    } else {
        to.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) to.push_back(static_cast<char>((n >> shift) & 0xff));
    }
    to.append(reinterpret_cast<const char*>(mask_key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
        to.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask_key[i % 4]));
    }
}

// One frame from the server at the start of `available` bytes, as far as its header tells.
struct ServerFrame {
    enum class Status { incomplete, malformed, too_large, complete } status = Status::incomplete;
    std::size_t header = 0;  // bytes before the payload
    std::uint64_t length = 0;
    unsigned char opcode = 0;
    bool fin = false;
    [[nodiscard]] std::size_t total() const { return header + static_cast<std::size_t>(length); }
};

// Reads a frame header. `incomplete` when more bytes are needed (the header, or the payload: then `total()`
// says how many in all). No extension was negotiated, so RSV bits are an error; and a server never masks.
inline ServerFrame read_server_frame(const unsigned char* p, std::size_t available) {
    ServerFrame f;
    if (available < 2) return f;
    if ((p[0] & 0x70) != 0 || (p[1] & 0x80) != 0) {
        f.status = ServerFrame::Status::malformed;
        return f;
    }
    f.fin = (p[0] & 0x80) != 0;
    f.opcode = p[0] & 0x0f;
    f.length = p[1] & 0x7f;
    f.header = 2;
    if (f.length == 126) {
        f.header = 4;
        if (available < f.header) {
            f.length = 0;  // not known yet
            return f;
        }
        f.length = (std::uint64_t{p[2]} << 8) | p[3];
    } else if (f.length == 127) {
        f.header = 10;
        if (available < f.header) {
            f.length = 0;  // not known yet
            return f;
        }
        f.length = 0;
        for (int i = 2; i < 10; ++i) f.length = (f.length << 8) | p[i];
    }
    if (f.length > max_frame_bytes) {
        f.status = ServerFrame::Status::too_large;
        return f;
    }
    if (available >= f.total()) f.status = ServerFrame::Status::complete;
    return f;
}

// The close code of a close frame's payload (1005: none given).
inline int close_code(std::string_view payload) {
    return payload.size() >= 2
               ? (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1])
               : 1005;
}

}  // namespace krmx_bench
