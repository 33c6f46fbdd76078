#pragma once
// Deltas between JSON values in jsondiffpatch's format (the npm package, 0.5.0): what Krmx's projections
// send, where the server sends each user a delta of its view and the client (`@krmx/state`'s
// ProjectionClient) applies it with `jsondiffpatch.patch`. `json_diff` writes deltas that JavaScript
// applies; `json_patch` applies deltas that JavaScript's `diff` writes (and json_diff's).
//
// The format, as jsondiffpatch's patch reads it:
// - `[new]` added, `[old, new]` replaced, `[old, 0, 0]` deleted, `[patch_text, 0, 2]` a string changed by
//   a text diff (see detail/json_text_patch.hpp);
// - `{"key": delta, ...}` members of an object changed;
// - `{"_t": "a", ...}` elements of an array changed: `"_N": [old, 0, 0]` deletes the element at original
//   index N, `"_N": ["", M, 3]` moves it to new index M, `"M": [new]` inserts at new index M, and
//   `"M": delta` changes the element that ends up at new index M. Patching deletes and takes out the moved
//   elements (highest original index first), then inserts them and the new ones (lowest new index first),
//   then changes elements.
//
// Nested deltas (objects and arrays in the delta's own structure, not the values it carries) are at most
// json_delta_max_depth levels deep, the root delta being level 1: json_diff replaces a changed value whole
// at that depth, and json_patch refuses a deeper delta instead of recursing without bound.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/detail/json_text_patch.hpp"
#include "krmx/core/json_optional.hpp"  // before anything here instantiates nlohmann's optional<json> conversion

namespace krmx {

/// How deep the delta's own structure may nest: as deep as an event.
inline constexpr int json_delta_max_depth = detail::json_max_event_depth;

namespace detail {

// The arrays of the format, built element by element: a braced list of two json values would become an
// object when the first one is a string.
[[nodiscard]] inline nlohmann::json delta_added(const nlohmann::json& value) {
    auto delta = nlohmann::json::array();
    delta.push_back(value);
    return delta;
}
[[nodiscard]] inline nlohmann::json delta_replaced(const nlohmann::json& from, const nlohmann::json& to) {
    auto delta = nlohmann::json::array();
    delta.push_back(from);
    delta.push_back(to);
    return delta;
}
[[nodiscard]] inline nlohmann::json delta_deleted(const nlohmann::json& value) {
    auto delta = nlohmann::json::array();
    delta.push_back(value);
    delta.push_back(0);
    delta.push_back(0);
    return delta;
}

// The longest common subsequence of two arrays' middles is looked for only up to this many table cells
// (a 1024 x 1024 middle, 2 MiB); beyond it the elements are paired by position.
inline constexpr std::size_t json_diff_max_lcs_cells = std::size_t{1} << 20;

[[nodiscard]] inline std::optional<nlohmann::json> diff_value(const nlohmann::json& from,
                                                              const nlohmann::json& to, int level);

[[nodiscard]] inline std::optional<nlohmann::json> diff_object(const nlohmann::json& from,
                                                               const nlohmann::json& to, int level) {
    if (level > json_delta_max_depth) {
        if (from == to) return std::nullopt;
        return delta_replaced(from, to);
    }
    // Both objects keep their members in key order: walk them side by side instead of looking each key up.
    nlohmann::json delta;  // null until a member differs: most members of most views do not
    const auto& a = from.get_ref<const nlohmann::json::object_t&>();
    const auto& b = to.get_ref<const nlohmann::json::object_t&>();
    auto i = a.begin();
    auto j = b.begin();
    while (i != a.end() || j != b.end()) {
        const int order = i == a.end() ? 1 : j == b.end() ? -1 : i->first.compare(j->first);
        if (order < 0) {
            delta[i->first] = delta_deleted(i->second);
            ++i;
        } else if (order > 0) {
            delta[j->first] = delta_added(j->second);
            ++j;
        } else {
            if (auto nested = diff_value(i->second, j->second, level + 1)) delta[i->first] = std::move(*nested);
            ++i;
            ++j;
        }
    }
    if (delta.is_null()) return std::nullopt;
    // A member named _t would make jsondiffpatch read the delta as an array delta (and fail): replace the
    // object whole instead.
    if (delta.contains("_t")) return delta_replaced(from, to);
    return delta;
}

// Pairs (i, j) of the middles `from[head, head + m)` and `to[head, head + n)`, increasing in both: equal
// elements of a longest common subsequence, and between them changed elements paired so that each becomes
// a nested delta rather than a deletion and an insertion.
struct ElementPair {
    std::size_t from = 0;
    std::size_t to = 0;
    bool equal = false;
};

// A gap between equal elements is paired by similarity up to this many candidate pairs (by position beyond).
inline constexpr std::size_t json_diff_max_gap_cells = 4096;

// How alike two elements are, to pair them: objects with a member in common (an id, say), then containers
// of one kind (whose nested delta is smaller than both values), then anything (one [old, new] is still
// smaller than a deletion and an insertion).
[[nodiscard]] inline int element_similarity(const nlohmann::json& a, const nlohmann::json& b,
                                            const std::vector<std::size_t>& members_a,
                                            const std::vector<std::size_t>& members_b) {
    if (a.is_object() && b.is_object()) {
        for (std::size_t x = 0, y = 0; x < members_a.size() && y < members_b.size();) {
            if (members_a[x] == members_b[y]) return 3;
            if (members_a[x] < members_b[y])
                ++x;
            else
                ++y;
        }
        return 2;
    }
    return a.is_array() && b.is_array() ? 2 : 1;
}

// The hashes of an object's members (key and value together), sorted; empty for anything else.
[[nodiscard]] inline std::vector<std::size_t> member_hashes(const nlohmann::json& value) {
    std::vector<std::size_t> out;
    if (!value.is_object()) return out;
    const std::hash<std::string> hash_key;
    const std::hash<nlohmann::json> hash_value;
    for (const auto& [key, member] : value.items()) out.push_back(hash_key(key) * 31 + hash_value(member));
    std::sort(out.begin(), out.end());
    return out;
}

// Pairs as many elements of from[i0, i1) and to[j0, j1) (middle indices) as there can be, the most alike
// first: a heaviest common subsequence by element_similarity.
inline void pair_gap(const nlohmann::json& from, const nlohmann::json& to, std::size_t head, std::size_t i0,
                     std::size_t i1, std::size_t j0, std::size_t j1, std::vector<ElementPair>& pairs) {
    const std::size_t p = i1 - i0;
    const std::size_t q = j1 - j0;
    if (p == 0 || q == 0) return;
    if (p > json_diff_max_gap_cells / q) {
        for (std::size_t k = 0; k < std::min(p, q); ++k) pairs.push_back({i0 + k, j0 + k, false});
        return;
    }
    std::vector<std::vector<std::size_t>> members_from(p);
    std::vector<std::vector<std::size_t>> members_to(q);
    for (std::size_t i = 0; i < p; ++i) members_from[i] = member_hashes(from[head + i0 + i]);
    for (std::size_t j = 0; j < q; ++j) members_to[j] = member_hashes(to[head + j0 + j]);
    const std::size_t width = q + 1;
    std::vector<int> weight(p * q);
    for (std::size_t i = 0; i < p; ++i) {
        for (std::size_t j = 0; j < q; ++j) {
            weight[i * q + j] =
                element_similarity(from[head + i0 + i], to[head + j0 + j], members_from[i], members_to[j]);
        }
    }
    std::vector<int> best((p + 1) * width,
                          0);  // best[i][j]: the heaviest pairing of the suffixes from i and j
    for (std::size_t i = p; i-- > 0;) {
        for (std::size_t j = q; j-- > 0;) {
            best[i * width + j] = std::max({best[(i + 1) * width + j], best[i * width + j + 1],
                                            weight[i * q + j] + best[(i + 1) * width + j + 1]});
        }
    }
    for (std::size_t i = 0, j = 0; i < p && j < q;) {
        if (best[i * width + j] == weight[i * q + j] + best[(i + 1) * width + j + 1]) {
            pairs.push_back({i0 + i, j0 + j, false});
            ++i;
            ++j;
        } else if (best[i * width + j] == best[(i + 1) * width + j]) {
            ++i;
        } else {
            ++j;
        }
    }
}

[[nodiscard]] inline std::vector<ElementPair> pair_elements(const nlohmann::json& from,
                                                            const nlohmann::json& to, std::size_t head,
                                                            std::size_t m, std::size_t n) {
    std::vector<ElementPair> anchors;
    if (m > 0 && n > 0 && m <= json_diff_max_lcs_cells / n) {
        // Hashes first: most pairs differ, and comparing them deeply costs a walk each.
        std::vector<std::size_t> hash_from(m);
        std::vector<std::size_t> hash_to(n);
        const std::hash<nlohmann::json> hash;
        for (std::size_t i = 0; i < m; ++i) hash_from[i] = hash(from[head + i]);
        for (std::size_t j = 0; j < n; ++j) hash_to[j] = hash(to[head + j]);
        const auto same = [&](std::size_t i, std::size_t j) {
            return hash_from[i] == hash_to[j] && from[head + i] == to[head + j];
        };
        // lcs[i][j]: the length of a longest common subsequence of the suffixes from i and j (at most
        // min(m, n) <= 1024 within the cell bound, so 16 bits hold it).
        const std::size_t width = n + 1;
        std::vector<std::uint16_t> lcs((m + 1) * width, 0);
        for (std::size_t i = m; i-- > 0;) {
            for (std::size_t j = n; j-- > 0;) {
                lcs[i * width + j] = same(i, j) ? static_cast<std::uint16_t>(lcs[(i + 1) * width + j + 1] + 1)
                                                : std::max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
            }
        }
        for (std::size_t i = 0, j = 0; i < m && j < n;) {
            if (same(i, j)) {
                anchors.push_back({i, j, true});
                ++i;
                ++j;
            } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
                ++i;
            } else {
                ++j;
            }
        }
    }
    std::vector<ElementPair> pairs;
    std::size_t i = 0;
    std::size_t j = 0;
    for (const auto& anchor : anchors) {
        pair_gap(from, to, head, i, anchor.from, j, anchor.to, pairs);
        pairs.push_back(anchor);
        i = anchor.from + 1;
        j = anchor.to + 1;
    }
    pair_gap(from, to, head, i, m, j, n, pairs);
    return pairs;
}

[[nodiscard]] inline std::optional<nlohmann::json> diff_array(const nlohmann::json& from,
                                                              const nlohmann::json& to, int level) {
    if (level > json_delta_max_depth) {
        if (from == to) return std::nullopt;
        return delta_replaced(from, to);
    }
    const std::size_t n1 = from.size();
    const std::size_t n2 = to.size();
    std::size_t head = 0;
    while (head < n1 && head < n2 && from[head] == to[head]) ++head;
    std::size_t tail = 0;
    while (tail < n1 - head && tail < n2 - head && from[n1 - 1 - tail] == to[n2 - 1 - tail]) ++tail;
    if (head + tail == n1 && n1 == n2) return std::nullopt;
    const std::size_t m = n1 - head - tail;
    const std::size_t n = n2 - head - tail;
    auto pairs = pair_elements(from, to, head, m, n);
    pairs.push_back({m, n, true});  // a sentinel: what follows the last pair is deleted and inserted
    auto delta = nlohmann::json::object();
    delta["_t"] = "a";
    std::size_t i = 0;
    std::size_t j = 0;
    for (const auto& pair : pairs) {
        for (; i < pair.from; ++i)
            delta[std::string{"_"}.append(std::to_string(head + i))] = delta_deleted(from[head + i]);
        for (; j < pair.to; ++j) delta[std::to_string(head + j)] = delta_added(to[head + j]);
        if (!pair.equal) {
            if (auto nested = diff_value(from[head + i], to[head + j], level + 1)) {
                delta[std::to_string(head + j)] = std::move(*nested);
            }
        }
        i = pair.from + 1;
        j = pair.to + 1;
    }
    if (delta.size() == 1) return std::nullopt;
    return delta;
}

[[nodiscard]] inline std::optional<nlohmann::json> diff_value(const nlohmann::json& from,
                                                              const nlohmann::json& to, int level) {
    if (from.is_object() && to.is_object()) return diff_object(from, to, level);
    if (from.is_array() && to.is_array()) return diff_array(from, to, level);
    if (from == to) return std::nullopt;  // numbers compare by value: 1 and 1.0 are equal, as in JavaScript
    return delta_replaced(from, to);
}

// ---- patching ----

// Text joined part by part: g++ 12 warns falsely (-Wrestrict, at -O3) about `"literal" + std::string`, and
// this header is compiled with its users' warnings.
[[nodiscard]] inline std::string join_text(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const auto part : parts) out += part;
    return out;
}

// The shapes a delta takes, told apart as jsondiffpatch's patch does: objects by `_t`, arrays by their
// length and third element.
enum class DeltaShape { added, replaced, deleted, text, moved, object, array };

// Where in the value a delta applies, for the messages of refused deltas.
class DeltaPath {
  public:
    void push(std::string_view key) { segments_.emplace_back(key); }
    void push(std::size_t index) { segments_.push_back(std::to_string(index)); }
    void pop() { segments_.pop_back(); }

    [[noreturn]] void fail(std::string_view what) const {
        std::string message = "json_patch: ";
        if (segments_.empty()) {
            message += "at the root: ";
        } else {
            message += "at ";
            for (const auto& segment : segments_) {
                message += '/';
                message += printable(segment);
            }
            message += ": ";
        }
        message += what;
        throw std::invalid_argument(message);
    }

    // Keys come from the delta (anyone's input): bounded and ASCII in messages, so that a message is never
    // huge or broken UTF-8 in a log.
    [[nodiscard]] static std::string printable(std::string_view text) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (i == 40) return out + "...";
            const auto c = static_cast<unsigned char>(text[i]);
            if (c >= 0x20 && c < 0x7F && c != '\\') {
                out += static_cast<char>(c);
            } else {
                out += "\\x";
                out += digits[c >> 4];
                out += digits[c & 0xF];
            }
        }
        return out;
    }

  private:
    std::vector<std::string> segments_;
};

[[nodiscard]] inline bool json_number_is(const nlohmann::json& value, int number) {
    return value.is_number() && value == number;
}

[[nodiscard]] inline DeltaShape delta_shape(const nlohmann::json& delta, const DeltaPath& path) {
    if (delta.is_object()) {
        const auto t = delta.find("_t");
        if (t == delta.end()) {
            // jsondiffpatch deletes the member an empty nested delta names (and fails at the root): no diff
            // writes one.
            if (delta.empty()) path.fail("an object delta without members");
            return DeltaShape::object;
        }
        if (!t->is_string() || t->get_ref<const std::string&>() != "a") {
            const auto found = t->is_string() ? DeltaPath::printable(t->get_ref<const std::string&>()) : "";
            path.fail(join_text({"\"_t\" of a delta must be \"a\" (an array delta), found ",
                                 t->is_string() ? std::string_view{"\""} : std::string_view{t->type_name()},
                                 found, t->is_string() ? "\"" : ""}));
        }
        return DeltaShape::array;
    }
    if (!delta.is_array())
        path.fail(join_text({"a delta must be an array or an object, found ", delta.type_name()}));
    switch (delta.size()) {
        case 1:
            return DeltaShape::added;
        case 2:
            return DeltaShape::replaced;
        case 3: {
            const auto& second = delta[1];
            const auto& kind = delta[2];
            if (json_number_is(kind, 0)) {
                if (!json_number_is(second, 0))
                    path.fail("a deletion [old, 0, 0] must have 0 as its second element");
                return DeltaShape::deleted;
            }
            if (json_number_is(kind, 2)) {
                if (!delta[0].is_string() || !json_number_is(second, 0)) {
                    path.fail("a text diff must be [patch_text, 0, 2] with a string patch_text");
                }
                return DeltaShape::text;
            }
            if (json_number_is(kind, 3)) {
                if (!second.is_number_unsigned() &&
                    !(second.is_number_integer() && second.get<std::int64_t>() >= 0)) {
                    path.fail("a move [value, index, 3] needs a non-negative integer index");
                }
                return DeltaShape::moved;
            }
            path.fail(
                "the third element of a 3-element delta must be 0 (deleted), 2 (text diff) or 3 (moved)");
        }
        default:
            path.fail(
                join_text({"an array delta has 1, 2 or 3 elements, found ", std::to_string(delta.size())}));
    }
}

// The array index a key of an array delta names: decimal without leading zeros, as JavaScript writes it.
[[nodiscard]] inline std::optional<std::size_t> delta_index(std::string_view digits) {
    if (digits.empty() || digits.size() > 15 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
    std::size_t value = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::size_t>(c - '0');
    }
    return value;
}

// What an array delta does, checked against the array's length: where each element of the patched array
// comes from, and which of them a nested delta then changes.
struct ArrayDeltaPlan {
    struct Source {
        std::size_t original = 0;                  // an element of the array before the patch...
        const nlohmann::json* inserted = nullptr;  // ...or, when set, a value the delta inserts
    };
    struct Change {
        std::size_t index = 0;  // in the patched array
        const nlohmann::json* delta = nullptr;
        DeltaShape shape = DeltaShape::replaced;
    };
    bool identity = true;         // nothing deleted, moved or inserted: `sources` is left empty
    std::vector<Source> sources;  // the patched array, element by element
    std::vector<Change> changes;  // by increasing index
};

// `check_old`: compare the old values of deletions with the elements (the checking pass does).
[[nodiscard]] inline ArrayDeltaPlan plan_array_delta(const nlohmann::json& array, const nlohmann::json& delta,
                                                     bool check_old, DeltaPath& path) {
    const std::size_t size = array.size();
    ArrayDeltaPlan plan;
    struct Insertion {
        std::size_t index = 0;
        ArrayDeltaPlan::Source source;
    };
    std::vector<Insertion> insertions;
    std::vector<bool> removed;
    for (const auto& [key, entry] : delta.items()) {
        if (key == "_t") continue;
        const bool original = !key.empty() && key[0] == '_';
        const auto index = delta_index(std::string_view{key}.substr(original ? 1 : 0));
        if (!index) {
            path.fail(join_text(
                {"an array delta's keys are \"_t\", indices (\"3\") and original indices (\"_3\"), found \"",
                 DeltaPath::printable(key), "\""}));
        }
        path.push(key);
        const auto shape = delta_shape(entry, path);
        if (original) {
            if (shape != DeltaShape::deleted && shape != DeltaShape::moved) {
                path.fail(
                    "only a deletion [old, 0, 0] or a move [value, index, 3] may name an original index");
            }
            if (*index >= size) {
                path.fail(
                    join_text({"the array has ", std::to_string(size), " elements, there is no element ",
                               std::to_string(*index), " to delete or move"}));
            }
            if (check_old && shape == DeltaShape::deleted && entry[0] != array[*index]) {
                path.fail("the old value of the deletion is not the element there");
            }
            if (removed.empty()) removed.resize(size, false);
            removed[*index] = true;
            if (shape == DeltaShape::moved) {
                // A target too large for size_t cannot fit any array: saturate and let the check below say
                // so.
                const auto to = entry[1].get<std::uint64_t>();
                constexpr auto most = std::numeric_limits<std::size_t>::max();
                const auto target = to > most ? most : static_cast<std::size_t>(to);
                insertions.push_back({target, {*index, nullptr}});
            }
        } else if (shape == DeltaShape::added) {
            insertions.push_back({*index, {0, &entry[0]}});
        } else if (shape == DeltaShape::deleted || shape == DeltaShape::moved) {
            path.fail("a deletion or a move must name the original index (\"_N\")");
        } else {
            plan.changes.push_back({*index, &entry, shape});
        }
        path.pop();
    }
    std::sort(insertions.begin(), insertions.end(),
              [](const Insertion& a, const Insertion& b) { return a.index < b.index; });
    for (std::size_t k = 1; k < insertions.size(); ++k) {
        // jsondiffpatch would insert both, the later one first: no diff writes that.
        if (insertions[k].index == insertions[k - 1].index) {
            path.fail(join_text(
                {"two elements are inserted or moved to index ", std::to_string(insertions[k].index)}));
        }
    }
    std::sort(
        plan.changes.begin(), plan.changes.end(),
        [](const ArrayDeltaPlan::Change& a, const ArrayDeltaPlan::Change& b) { return a.index < b.index; });
    std::size_t length = size;
    if (!removed.empty() || !insertions.empty()) {
        plan.identity = false;
        // Deleted and moved elements come out, then insertions go in by increasing index: each goes where
        // the array is long enough at that point (JavaScript's splice would append it at the end instead).
        std::size_t next = 0;  // the next original element that stays
        const auto take_original = [&] {
            while (next < size && !removed.empty() && removed[next]) ++next;
            if (next == size) return false;
            plan.sources.push_back({next++, nullptr});
            return true;
        };
        plan.sources.reserve(size + insertions.size());
        for (const auto& insertion : insertions) {
            while (plan.sources.size() < insertion.index) {
                if (!take_original()) {
                    path.fail(join_text({"an element is inserted or moved to index ",
                                         std::to_string(insertion.index), ", past the end of the array (",
                                         std::to_string(plan.sources.size()), " elements at that point)"}));
                }
            }
            plan.sources.push_back(insertion.source);
        }
        while (take_original()) {
        }
        length = plan.sources.size();
    }
    if (!plan.changes.empty() && plan.changes.back().index >= length) {
        path.fail(
            join_text({"the patched array has ", std::to_string(length), " elements, there is no element ",
                       std::to_string(plan.changes.back().index), " to change"}));
    }
    return plan;
}

// Applies `delta` (of `shape`, which fits where it is) to `value`. With Apply false it only checks, with
// the same code, that every part of the delta fits; then applying cannot fail (but for memory).
template <bool Apply>
void patch_value(std::conditional_t<Apply, nlohmann::json&, const nlohmann::json&> value,
                 const nlohmann::json& delta, DeltaShape shape, int level, DeltaPath& path) {
    switch (shape) {
        case DeltaShape::added:
            if constexpr (Apply) value = delta[0];
            return;
        case DeltaShape::replaced:
            if constexpr (Apply) {
                value = delta[1];
            } else if (delta[0] != value) {
                path.fail("the old value of the replacement is not the value there");
            }
            return;
        case DeltaShape::deleted:
        case DeltaShape::moved:
            path.fail("a deletion or a move cannot apply here");  // the callers refuse them first
        case DeltaShape::text: {
            if (!value.is_string())
                path.fail(join_text({"a text diff needs a string, found ", value.type_name()}));
            std::string patched;
            try {
                patched = apply_text_patch(value.template get_ref<const std::string&>(),
                                           delta[0].get_ref<const std::string&>());
            } catch (const std::invalid_argument& e) {
                path.fail(e.what());
            }
            if constexpr (Apply) value = std::move(patched);
            return;
        }
        case DeltaShape::object:
        case DeltaShape::array:
            break;
    }
    if (level > json_delta_max_depth) {
        path.fail(
            join_text({"the delta nests deeper than ", std::to_string(json_delta_max_depth), " levels"}));
    }
    if (shape == DeltaShape::object) {
        if (!value.is_object())
            path.fail(join_text({"an object delta needs an object, found ", value.type_name()}));
        for (const auto& [key, entry] : delta.items()) {
            if constexpr (!Apply) path.push(key);
            const auto entry_shape = delta_shape(entry, path);
            const auto member = value.find(key);
            const bool present = member != value.end();
            if (entry_shape == DeltaShape::moved) path.fail("a move belongs in an array delta");
            if (entry_shape == DeltaShape::added) {
                if (present) path.fail("the member to add is already there");
                if constexpr (Apply) value[key] = entry[0];
            } else if (!present) {
                path.fail("no such member to change or delete");
            } else if (entry_shape == DeltaShape::deleted) {
                if constexpr (Apply) {
                    value.erase(member);
                } else if (entry[0] != *member) {
                    path.fail("the old value of the deletion is not the value there");
                }
            } else {
                patch_value<Apply>(*member, entry, entry_shape, level + 1, path);
            }
            if constexpr (!Apply) path.pop();
        }
        return;
    }
    if (!value.is_array()) path.fail(join_text({"an array delta needs an array, found ", value.type_name()}));
    const auto plan = plan_array_delta(value, delta, !Apply, path);
    if constexpr (Apply) {
        if (!plan.identity) {
            auto patched = nlohmann::json::array();
            auto& elements = patched.template get_ref<nlohmann::json::array_t&>();
            elements.reserve(plan.sources.size());
            for (const auto& source : plan.sources) {
                if (source.inserted) {
                    elements.push_back(*source.inserted);
                } else {
                    elements.push_back(std::move(value[source.original]));
                }
            }
            value = std::move(patched);
        }
        for (const auto& change : plan.changes)
            patch_value<true>(value[change.index], *change.delta, change.shape, level + 1, path);
    } else {
        for (const auto& change : plan.changes) {
            path.push(change.index);
            const auto& element = [&]() -> const nlohmann::json& {
                if (plan.identity) return value[change.index];
                const auto& source = plan.sources[change.index];
                return source.inserted ? *source.inserted : value[source.original];
            }();
            patch_value<false>(element, *change.delta, change.shape, level + 1, path);
            path.pop();
        }
    }
}

}  // namespace detail

/// The delta that turns `from` into `to` in jsondiffpatch's format, or nullopt when they are equal (as
/// JavaScript's `diff` returns undefined). `jsondiffpatch.patch(from, delta)` gives `to`, and so does
/// json_patch. Numbers compare by value (1 and 1.0 are equal, as they are in JavaScript; integers beyond
/// 2^53 are not exact there). Simpler than jsondiffpatch's own diff: no moves and no text diffs; an array
/// delta deletes, inserts and changes elements (a common prefix and suffix, then a longest common
/// subsequence of equal elements, and the elements between them paired with the most alike: objects with a
/// member in common, then containers of one kind; by position in very long arrays), and a changed string
/// is replaced whole. An unchanged member or element never appears in the delta.
[[nodiscard]] inline std::optional<nlohmann::json> json_diff(const nlohmann::json& from,
                                                             const nlohmann::json& to) {
    return detail::diff_value(from, to, 1);
}

/// Applies a jsondiffpatch delta to `value`: those of json_diff and those of JavaScript's `diff` (0.5.0,
/// default options: array moves, text diffs). Stricter than JavaScript, which patches what it can: a delta
/// must fit the value, or std::invalid_argument (naming where) is thrown and `value` is left unchanged. It
/// fits when its shapes are jsondiffpatch's, members it changes or deletes exist and members it adds do
/// not, array indices are in range, the old values of replacements and deletions are the values there
/// (numbers by value), nested deltas meet values of their kind (objects, arrays, strings for text diffs,
/// applied exactly where their hunks say) and it nests at most json_delta_max_depth levels. So a delta
/// applied twice, or to a value it was not made for, is refused where JavaScript would patch something.
/// (The "" that moves carry in place of their value is not compared.) The array delta without changes,
/// `{"_t":"a"}`, leaves any value unchanged, as in JavaScript.
/// `delta` must not be a part of `value` (it may be `value` itself).
inline void json_patch(nlohmann::json& value, const nlohmann::json& delta) {
    if (&value == &delta) {  // patching a value with itself: the delta must outlive the changes
        const auto copy = delta;
        json_patch(value, copy);
        return;
    }
    // An array delta without changes leaves any value as it is, in JavaScript too: the delta that says
    // "nothing changed" where a delta must be sent (krmx::no_change_delta).
    if (delta.is_object() && delta.size() == 1) {
        const auto t = delta.find("_t");
        if (t != delta.end() && t->is_string() && t->get_ref<const std::string&>() == "a") return;
    }
    detail::DeltaPath path;
    const auto shape = detail::delta_shape(delta, path);
    if (shape == detail::DeltaShape::deleted) path.fail("a delta cannot delete the whole value");
    if (shape == detail::DeltaShape::moved) path.fail("a move belongs in an array delta");
    // Check everything first, then apply: a delta refused halfway must not leave half of it applied.
    detail::patch_value<false>(std::as_const(value), delta, shape, 1, path);
    detail::patch_value<true>(value, delta, shape, 1, path);
}

}  // namespace krmx
