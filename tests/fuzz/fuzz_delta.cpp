// The jsondiffpatch format, both ends: json_patch with any delta a hostile server could send (text diffs and
// array moves included), and json_diff against the tape writer the projection domain sends its deltas with.
// The input is a JSON array [from, to] or [from, to, delta].
// - json_patch either applies the delta or throws std::invalid_argument and leaves the value as it was;
// - json_diff's delta, patched onto `from`, gives `to` (numbers by value), and none means they are equal;
// - the tapes of `from` and `to` hold them exactly, and tape_diff writes the text of json_diff's delta.
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
    auto patched = from;
    try {
        krmx::json_patch(patched, *delta);
    } catch (...) {
        KRMX_FUZZ_CHECK(!"json_patch refused json_diff's own delta");
    }
    KRMX_FUZZ_CHECK(patched == to);
    return 0;
}
