// Static files beside the WebSocket: which request target maps to which file, and every way out of the
// folder refused (`..`, percent-encoded dots and slashes, absolute targets, symlinks, NUL bytes).
// Pure path logic, no sockets: the same rules the server applies (see websocket_http_tests.cpp).
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>

#include <krmx/net/detail/static_files.hpp>

#include "catch.hpp"
#include "temp_dir.hpp"

namespace static_files_tests {
namespace {

namespace fs = std::filesystem;
using krmx::net::detail::resolve_static_file;
using krmx::net::detail::StaticFile;
using krmx::net::detail::StaticRefusal;

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream{p, std::ios::binary} << text;
}

// root/ holds the site; outside/ is next to it and must never be served.
struct Site {
    Site() {
        write(root() / "index.html", "<h1>hi</h1>");
        write(root() / "app.js", "1");
        write(root() / "style.css", "a{}");
        write(root() / "shot.PNG", "png");
        write(root() / "sub" / "page.html", "page");
        write(root() / "sub" / "index.html", "sub index");
        write(root() / ".secret", "dot file");
        write(root() / "noext", "x");
        write(outside() / "secret.txt", "secret");
        fs::create_symlink(outside() / "secret.txt", root() / "link-out.txt");
        fs::create_directory_symlink(outside(), root() / "dir-out");
        fs::create_symlink(root() / "app.js", root() / "link-in.js");
    }
    [[nodiscard]] fs::path root() const { return dir.path() / "site"; }
    [[nodiscard]] fs::path outside() const { return dir.path() / "outside"; }
    krmx::testing::TempDir dir;
};

int status_of(const Site& site, std::string_view target) {
    const auto r = resolve_static_file(site.root(), target);
    if (const auto* refusal = std::get_if<StaticRefusal>(&r)) return refusal->status;
    return 200;
}

}  // namespace

TEST_CASE("a request target maps to a file in the folder, with its content type", "[net][static]") {
    const Site site;
    const auto file = [&](std::string_view target) { return std::get<StaticFile>(resolve_static_file(site.root(), target)); };
    CHECK(file("/").path == fs::canonical(site.root() / "index.html"));
    CHECK(file("/").content_type == "text/html; charset=utf-8");
    CHECK(file("/index.html?x=1#frag").path == fs::canonical(site.root() / "index.html"));
    CHECK(file("/app.js").content_type == "text/javascript; charset=utf-8");
    CHECK(file("/style.css").content_type == "text/css; charset=utf-8");
    CHECK(file("/shot.PNG").content_type == "image/png");
    CHECK(file("/noext").content_type == "application/octet-stream");
    CHECK(file("/sub/page.html").path == fs::canonical(site.root() / "sub" / "page.html"));
    CHECK(file("/sub/").path == fs::canonical(site.root() / "sub" / "index.html"));
    CHECK(file("/%73ub/page%2Ehtml").path == fs::canonical(site.root() / "sub" / "page.html"));
    CHECK(file("//app.js").path == fs::canonical(site.root() / "app.js"));
    // a symlink that stays inside the folder is fine
    CHECK(file("/link-in.js").path == fs::canonical(site.root() / "app.js"));
}

TEST_CASE("targets that try to leave the folder are refused", "[net][static][bad-input]") {
    const Site site;
    for (const char* target : {"/../outside/secret.txt", "/sub/../../outside/secret.txt", "/..", "/../",
                               "/%2e%2e/outside/secret.txt", "/%2E%2E%2Foutside%2Fsecret.txt",
                               "/sub/%2e%2e%2f%2e%2e%2foutside/secret.txt", "/.%2e/outside/secret.txt",
                               "/./index.html", "/.secret", "/sub/.", "/link-out.txt", "/dir-out/secret.txt"}) {
        INFO(target);
        CHECK(status_of(site, target) == 403);
    }
}

TEST_CASE("malformed targets get 400: absolute forms, bad escapes, NUL bytes, backslashes", "[net][static][bad-input]") {
    const Site site;
    using namespace std::string_view_literals;
    for (const auto target : {"http://127.0.0.1/index.html"sv, "index.html"sv, ""sv, "*"sv,
                              "/%00"sv, "/index.html%00.js"sv, "/index.html\0.js"sv, "/%zz"sv, "/%4"sv,
                              "/..\\outside\\secret.txt"sv, "/%5c..%5coutside"sv}) {
        INFO(std::string{target});
        CHECK(status_of(site, target) == 400);
    }
}

TEST_CASE("missing files and folders without an index get 404", "[net][static]") {
    const Site site;
    fs::create_directories(site.root() / "empty");
    CHECK(status_of(site, "/nope.html") == 404);
    CHECK(status_of(site, "/empty/") == 404);
    CHECK(status_of(site, "/empty") == 404);  // a folder itself is not a file
    CHECK(status_of(site, "/sub/nope/deeper") == 404);
    // a folder that is not there at all: every request is 404, none throws
    CHECK(std::get<StaticRefusal>(resolve_static_file(site.dir.path() / "missing", "/")).status == 404);
}

}  // namespace static_files_tests
