#pragma once
// Which file a plain HTTP GET names inside the folder an application serves (the WebSocketServer's
// `static_files`), and every way out of that folder refused. Pure path logic (no sockets), so that it is
// tested on its own. The order of the checks matters: the target is decoded once, then judged, so that
// `%2e%2e%2f` is refused like `../`; symlinks are judged by where they lead (canonical path).

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

#include "krmx/net/detail/query.hpp"

namespace krmx::net::detail {

struct StaticFile {
    std::filesystem::path path;    ///< canonical, inside the canonical root
    std::string_view content_type;
};

struct StaticRefusal {
    int status;  ///< 400 malformed, 403 leaves the folder or names a hidden file, 404 not there
    std::string reason;
};

/// Percent-decoding (RFC 3986); nullopt on a broken escape (`%4`, `%zz`). `+` stays `+` (paths, not forms).
[[nodiscard]] inline std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int hi = hex_digit(text[i + 1]);
        const int lo = hex_digit(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

/// The Content-Type for a file name (by extension, case-insensitive); unknown: application/octet-stream.
[[nodiscard]] inline std::string_view content_type_for(const std::filesystem::path& file) {
    std::string ext = file.extension().string();
    for (auto& c : ext) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
    if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
    if (ext == ".css") return "text/css; charset=utf-8";
    if (ext == ".json" || ext == ".map") return "application/json";
    if (ext == ".txt") return "text/plain; charset=utf-8";
    if (ext == ".svg") return "image/svg+xml";
    if (ext == ".png") return "image/png";
    if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
    if (ext == ".gif") return "image/gif";
    if (ext == ".ico") return "image/x-icon";
    if (ext == ".webp") return "image/webp";
    if (ext == ".wasm") return "application/wasm";
    if (ext == ".woff2") return "font/woff2";
    return "application/octet-stream";
}

/// Maps a request target (origin form: `/path?query`) to a regular file inside `root`. A target ending in
/// `/` names that folder's index.html. Never throws (filesystem errors become 404).
[[nodiscard]] inline std::variant<StaticFile, StaticRefusal> resolve_static_file(const std::filesystem::path& root,
                                                                                 std::string_view target) {
    namespace fs = std::filesystem;
    // Only origin form: absolute form (`http://...`), authority form and `*` name no file here.
    if (target.empty() || target.front() != '/') return StaticRefusal{400, "bad request target"};
    target = target.substr(0, target.find_first_of("?#"));
    const auto decoded = percent_decode(target);
    if (!decoded) return StaticRefusal{400, "bad percent-encoding"};
    // NUL ends a C path early; a backslash is a separator elsewhere: neither has a place in a file name here.
    if (decoded->find('\0') != std::string::npos || decoded->find('\\') != std::string::npos) {
        return StaticRefusal{400, "bad character in path"};
    }
    fs::path relative;
    std::size_t start = 1;
    while (start <= decoded->size()) {
        const auto end = std::min(decoded->find('/', start), decoded->size());
        const std::string_view segment{decoded->data() + start, end - start};
        // `..` and `.` climb or hide; a leading dot also keeps hidden files (.git, .env) private.
        if (!segment.empty() && segment.front() == '.') return StaticRefusal{403, "forbidden"};
        if (!segment.empty()) relative /= fs::path{std::string{segment}};
        start = end + 1;
    }
    if (decoded->back() == '/') relative /= "index.html";

    std::error_code ec;
    const fs::path base = fs::canonical(root, ec);
    if (ec) return StaticRefusal{404, "not found"};
    const fs::path file = fs::canonical(base / relative, ec);  // follows every symlink on the way
    if (ec) return StaticRefusal{404, "not found"};
    // Inside means: the canonical root is a prefix of the canonical file, element by element.
    auto f = file.begin();
    for (auto b = base.begin(); b != base.end(); ++b, ++f) {
        if (f == file.end() || *f != *b) return StaticRefusal{403, "forbidden"};
    }
    if (!fs::is_regular_file(file, ec) || ec) return StaticRefusal{404, "not found"};
    return StaticFile{file, content_type_for(file)};
}

}  // namespace krmx::net::detail
