// Differential: the fast scanner against the reference grammar (nlohmann's parser plus krmx's narrowings)
// on the same bytes, and the scanner's raw members against nlohmann's DOM of the same object.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/json_scan.hpp>

#include "fuzz_support.hpp"
#include "json_oracle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text{reinterpret_cast<const char*>(data), size};
    const bool scanned = krmx::detail::scan_value(text).empty();
    KRMX_FUZZ_CHECK(scanned == krmx::testing::JsonOracle::accepts(text));
    if (!scanned) return 0;
    const auto dom = nlohmann::json::parse(text, nullptr, false);
    KRMX_FUZZ_CHECK(!dom.is_discarded());
    if (dom.is_string()) {
        const auto first = text.find_first_not_of(" \t\r\n");
        const auto last = text.find_last_not_of(" \t\r\n");
        KRMX_FUZZ_CHECK(krmx::detail::json_string_value(text.substr(first, last - first + 1)) ==
                        dom.get<std::string>());
    }
    if (!dom.is_object()) return 0;
    std::vector<krmx::detail::JsonMember> members;
    KRMX_FUZZ_CHECK(krmx::detail::scan_object(text, members).empty());
    KRMX_FUZZ_CHECK(members.size() == dom.size());
    for (const auto& member : members) {
        std::string key;
        krmx::detail::json_unescape(member.key, key);
        const auto it = dom.find(key);
        KRMX_FUZZ_CHECK(it != dom.end());
        KRMX_FUZZ_CHECK(krmx::detail::find_member(members, key) == &member);
        const auto value = nlohmann::json::parse(member.value, nullptr, false);
        KRMX_FUZZ_CHECK(!value.is_discarded() && value == *it);
    }
    return 0;
}
