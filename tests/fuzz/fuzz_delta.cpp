// The jsondiffpatch format, both ends: json_patch with any delta a hostile server could send (text diffs and
// array moves included), and json_diff against the tape writer the projection domain sends its deltas with.
// The input is a JSON array [from, to] or [from, to, delta].
// - json_patch either applies the delta or throws std::invalid_argument and leaves the value as it was;
// - json_diff's delta, patched onto `from`, gives `to` (numbers by value), and none means they are equal;
// - the tapes of `from` and `to` hold them exactly, and tape_diff writes the text of json_diff's delta, also
//   through a cache of the deltas of top-level members.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/json_tape.hpp>
#include <krmx/core/json_delta.hpp>

#include "fuzz_support.hpp"

namespace {

std::string text_of(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto input = nlohmann::json::parse(data, data + size, nullptr, false);
    if (!input.is_array() || input.size() < 2 || input.size() > 3) return -1;  // not kept in the corpus
    const auto& from = input[0];
    const auto& to = input[1];

    if (input.size() == 3) {
        auto patched = from;
        try {
            krmx::json_patch(patched, input[2]);
        } catch (const std::invalid_argument&) {
            KRMX_FUZZ_CHECK(text_of(patched) == text_of(from));  // refused: untouched
        } catch (...) {
            KRMX_FUZZ_CHECK(!"json_patch threw something other than std::invalid_argument");
        }
    }

    const krmx::detail::JsonTape from_tape{from};
    const krmx::detail::JsonTape to_tape{to};
    KRMX_FUZZ_CHECK(from_tape.text() == text_of(from));
    KRMX_FUZZ_CHECK(text_of(from_tape.value()) == text_of(from));
    KRMX_FUZZ_CHECK(from_tape != to_tape || from == to);

    const auto delta = krmx::json_diff(from, to);
    const auto tape_delta = krmx::detail::tape_diff(from_tape, to_tape);
    KRMX_FUZZ_CHECK(delta.has_value() == tape_delta.has_value());
    if (!delta) {
        KRMX_FUZZ_CHECK(from == to);
        return 0;
    }
    KRMX_FUZZ_CHECK(*tape_delta == text_of(*delta));
    // Two members that change alike: the second one's delta comes from the cache, and is the same.
    krmx::detail::TapeDiffCache cache;
    const nlohmann::json wrapped_from = {{"a", from}, {"b", from}};
    const nlohmann::json wrapped_to = {{"a", to}, {"b", to}};
    const auto wrapped_delta = krmx::json_diff(wrapped_from, wrapped_to);
    const krmx::detail::JsonTape wrapped_from_tape{wrapped_from};
    const krmx::detail::JsonTape wrapped_to_tape{wrapped_to};  // (the cache keeps views of both)
    const auto cached = krmx::detail::tape_diff(wrapped_from_tape, wrapped_to_tape, &cache);
    KRMX_FUZZ_CHECK(wrapped_delta && cached && *cached == text_of(*wrapped_delta));
    const auto container = [](const nlohmann::json& v) { return v.is_object() || v.is_array(); };
    KRMX_FUZZ_CHECK(cache.hits == (container(from) && container(to) ? 1U : 0U));
    auto patched = from;
    try {
        krmx::json_patch(patched, *delta);
    } catch (...) {
        KRMX_FUZZ_CHECK(!"json_patch refused json_diff's own delta");
    }
    KRMX_FUZZ_CHECK(patched == to);
    return 0;
}
