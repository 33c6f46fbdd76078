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

}  // namespace krmx_bench
