#pragma once
// The header of a WebSocket text frame as a server sends it (RFC 6455 §5.2): FIN, opcode 1, no mask, the
// payload length in the shortest form. The server writes its frames itself, header then the shared text,
// so that a broadcast is one copy per connection instead of one Beast write operation per frame.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace krmx::net::detail {

class TextFrameHeader {
  public:
    explicit TextFrameHeader(std::uint64_t payload_bytes) noexcept {
        bytes_[0] = static_cast<char>(0x81);  // FIN + text
        if (payload_bytes < 126) {
            bytes_[1] = static_cast<char>(payload_bytes);
            size_ = 2;
        } else if (payload_bytes <= 0xFFFF) {
            bytes_[1] = static_cast<char>(126);
            put_big_endian(payload_bytes, 2);
            size_ = 4;
        } else {
            bytes_[1] = static_cast<char>(127);
            put_big_endian(payload_bytes, 8);
            size_ = 10;
        }
    }

    [[nodiscard]] std::string_view view() const noexcept { return {bytes_.data(), size_}; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

  private:
    void put_big_endian(std::uint64_t value, std::size_t count) noexcept {
        for (std::size_t i = 0; i < count; ++i) {
            bytes_[2 + i] = static_cast<char>((value >> (8 * (count - 1 - i))) & 0xFF);
        }
    }

    std::array<char, 10> bytes_{};
    std::size_t size_ = 0;
};

}  // namespace krmx::net::detail
