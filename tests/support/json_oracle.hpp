#pragma once
// The reference for krmx's wire grammar, built from nlohmann/json's own parser: nlohmann accepts the text,
// and its SAX events show none of the narrowings krmx adds (repeated keys after decoding, integers past
// 2^53, nesting past the limit). Used by the scanner's tests and its differential fuzzer.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/json_scan.hpp>

namespace krmx::testing {

class JsonOracle : public nlohmann::json_sax<nlohmann::json> {
  public:
    /// Whether krmx's grammar accepts `text` as one value nested at most `max_depth` levels.
    static bool accepts(std::string_view text, int max_depth = detail::json_max_event_depth) {
        JsonOracle oracle{max_depth};
        // nlohmann skips a byte order mark and ends the input at a NUL byte (as in a C string);
        // JavaScript and krmx refuse both.
        if (text.starts_with("\xef\xbb\xbf") || text.find('\0') != std::string_view::npos) return false;
        const bool parsed = nlohmann::json::sax_parse(text.begin(), text.end(), &oracle);
        return parsed && oracle.ok_;
    }

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t v) override {
        const auto magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
        return exact(magnitude);
    }
    bool number_unsigned(number_unsigned_t v) override { return exact(v); }
    bool number_float(number_float_t, const string_t& raw) override {
        // An integer literal too large for 64 bits arrives here; it is as inexact as a smaller one past 2^53.
        if (raw.find_first_of(".eE") == string_t::npos) ok_ = false;
        return true;
    }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
        keys_.emplace_back();
        return deeper();
    }
    bool key(string_t& k) override {
        if (!keys_.back().insert(k).second) ok_ = false;
        return true;
    }
    bool end_object() override {
        keys_.pop_back();
        --depth_;
        return true;
    }
    bool start_array(std::size_t) override { return deeper(); }
    bool end_array() override {
        --depth_;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        return false;
    }

  private:
    explicit JsonOracle(int max_depth) : max_depth_(max_depth) {}
    bool exact(std::uint64_t magnitude) {
        if (magnitude > detail::json_max_exact_integer) ok_ = false;
        return true;
    }
    bool deeper() {
        if (++depth_ > max_depth_) ok_ = false;
        return true;
    }
    int max_depth_;
    int depth_ = 0;
    bool ok_ = true;
    std::vector<std::set<std::string>> keys_;
};

}  // namespace krmx::testing
