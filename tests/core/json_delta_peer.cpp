// The C++ side of the differential test of json_diff/json_patch with the real jsondiffpatch (run by
// js/json_delta.mjs, which has the JavaScript side), a child of the core tests' program
// (`krmx_core_tests --krmx-child krmx_json_delta_peer ...`, tests/support/test_child.hpp):
//
//   json_delta_peer generate SEED COUNT   writes COUNT lines {"from", "to", "delta"} (no delta when equal):
//                                         random pairs and json_diff's deltas, for JavaScript to patch
//   json_delta_peer apply                 reads such lines written by JavaScript's diff and applies each
//                                         delta with json_patch; also checks json_diff on the same pairs
//
// Both print what failed first, readably, and exit 1 on any failure.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include <krmx/core/json_delta.hpp>

#include "json_delta_random.hpp"

#include "test_child.hpp"

namespace child_krmx_json_delta_peer {

namespace {

using nlohmann::json;

std::string shorten(const std::string& text) {
    return text.size() <= 2000 ? text
                               : text.substr(0, 2000) + "... (" + std::to_string(text.size()) + " bytes)";
}

// Which shapes a delta uses, to report what the run covered.
struct Shapes {
    bool moves = false;
    bool texts = false;
};
void find_shapes(const json& delta, Shapes& shapes, int level = 0) {
    if (level > krmx::json_delta_max_depth) return;
    if (delta.is_array()) {
        if (delta.size() == 3 && delta[2] == 3) shapes.moves = true;
        if (delta.size() == 3 && delta[2] == 2) shapes.texts = true;
    } else if (delta.is_object()) {
        for (const auto& [key, entry] : delta.items()) find_shapes(entry, shapes, level + 1);
    }
}

int generate(std::uint64_t seed, long count) {
    krmx_test::JsonDeltaRandom random{seed};
    random.javascript_keys_only = true;
    for (long i = 0; i < count; ++i) {
        const auto [from, to] = random.pair();
        json line = {{"from", from}, {"to", to}};
        const auto delta = krmx::json_diff(from, to);
        bool ok = delta.has_value() == (from != to);
        if (delta) {
            line["delta"] = *delta;
            auto value = from;
            try {
                krmx::json_patch(value, *delta);
                ok = ok && value == to;
            } catch (const std::exception& e) {
                std::cerr << "json_patch threw: " << e.what() << "\n";
                ok = false;
            }
        }
        if (!ok) {
            std::cerr << "case " << i << " (seed " << seed
                      << "): json_diff then json_patch in C++ does not give to\n"
                      << shorten(line.dump()) << "\n";
            return 1;
        }
        std::cout << line.dump() << "\n";
    }
    return 0;
}

int apply() {
    long applied = 0;
    long equal = 0;
    long moves = 0;
    long texts = 0;
    long failed = 0;
    long diff_failed = 0;
    std::string line;
    for (long number = 1; std::getline(std::cin, line); ++number) {
        if (line.empty()) continue;
        const auto record = json::parse(line);
        const auto& from = record.at("from");
        const auto& to = record.at("to");
        const auto delta = record.find("delta");
        std::string problem;
        auto value = from;
        if (delta == record.end()) {
            ++equal;
            if (from != to) problem = "JavaScript wrote no delta, but from and to differ in C++";
        } else {
            ++applied;
            Shapes shapes;
            find_shapes(*delta, shapes);
            moves += shapes.moves;
            texts += shapes.texts;
            try {
                krmx::json_patch(value, *delta);
                if (value != to) problem = "json_patch gave " + shorten(value.dump());
            } catch (const std::exception& e) {
                problem = std::string{"json_patch threw: "} + e.what();
            }
        }
        if (!problem.empty() && ++failed == 1) {
            std::cout << "first failure, line " << number << ": " << problem
                      << "\n  from:  " << shorten(from.dump())
                      << "\n  delta: " << (delta == record.end() ? "(none)" : shorten(delta->dump()))
                      << "\n  to:    " << shorten(to.dump()) << "\n";
        }
        // json_diff on JavaScript's pairs: no delta exactly for equal values, and its delta patches. (Not
        // exactly when jsondiffpatch writes none: it compares objects by reference, so two equal objects
        // that swap places are a move to it.)
        const auto ours = krmx::json_diff(from, to);
        std::string diff_problem;
        if (ours.has_value() != (from != to)) {
            diff_problem = "json_diff writes a delta for equal values, or none for different ones";
        } else if (ours) {
            auto patched = from;
            try {
                krmx::json_patch(patched, *ours);
                if (patched != to) diff_problem = "json_patch(from, json_diff(from, to)) is not to";
            } catch (const std::exception& e) {
                diff_problem = std::string{"json_patch threw on json_diff's delta: "} + e.what();
            }
        }
        if (!diff_problem.empty() && ++diff_failed == 1) {
            std::cout << "first json_diff failure, line " << number << ": " << diff_problem
                      << "\n  from: " << shorten(from.dump()) << "\n  to:   " << shorten(to.dump()) << "\n";
        }
    }
    std::cout << applied << " deltas of jsondiffpatch applied by json_patch (" << moves << " with moves, "
              << texts << " with text diffs), " << equal << " equal pairs; " << failed
              << " failed; json_diff on the same pairs: " << diff_failed << " failed\n";
    return failed == 0 && diff_failed == 0 && applied > 0 ? 0 : 1;
}

}  // namespace

int run(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "generate" && argc == 4) return generate(std::stoull(argv[2]), std::stol(argv[3]));
        if (mode == "apply" && argc == 2) return apply();
        std::cerr << "usage: json_delta_peer generate SEED COUNT | json_delta_peer apply < lines\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "json_delta_peer: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace child_krmx_json_delta_peer

KRMX_TEST_CHILD(krmx_json_delta_peer, child_krmx_json_delta_peer::run);
