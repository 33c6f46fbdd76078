#pragma once

#define KRMX_VERSION_MAJOR 0
#define KRMX_VERSION_MINOR 1
#define KRMX_VERSION_PATCH 0
#define KRMX_VERSION_STRING "0.1.0"

namespace krmx {
inline constexpr int version_major = KRMX_VERSION_MAJOR;
inline constexpr int version_minor = KRMX_VERSION_MINOR;
inline constexpr int version_patch = KRMX_VERSION_PATCH;
inline constexpr const char* version_string = KRMX_VERSION_STRING;
}  // namespace krmx
