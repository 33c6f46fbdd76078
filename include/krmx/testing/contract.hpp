#pragma once
// The machinery of krmx's contract suites (event_store_contract.hpp, checkpoint_store_contract.hpp,
// lock_provider_contract.hpp): a suite runs its cases on your fixture and hands back a ContractReport that
// says which cases ran and, for each failed check, the case, what was checked, the values, file:line and what
// the case was doing. No test framework is involved, so one line runs a suite from Catch2, GoogleTest or a
// bare main:
//
//   const auto report = krmx::testing::event_store_contract<MyStoreFixture>();
//   if (!report.ok()) std::fputs(report.str().c_str(), stderr);
//
// A case that throws is a failed case (with the exception's message), never a crash. Cases check with the
// KRMX_CHECK... macros below on a ContractChecks; KRMX_REQUIRE... and KRMX_FAIL end the case.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <ostream>
#include <ranges>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"

namespace krmx::testing {

/// One failed check of a contract case.
struct ContractFailure {
    std::string case_name;
    /// What was checked: the expression as written, or what went wrong ("the case threw ...").
    std::string check;
    /// The values involved ("3 == 2"), when the check has any to show.
    std::string values;
    std::string file;
    unsigned line = 0;
    /// What the case said it was doing when the check failed (the item of a loop, a variant), outermost
    /// first.
    std::vector<std::string> context;
};

/// A case of a suite that ran.
struct ContractCaseResult {
    enum class Outcome { passed, failed, skipped };
    std::string name;
    Outcome outcome = Outcome::passed;
    /// Why a case was skipped: what the fixture or store does not offer.
    std::string skip_reason;
    std::chrono::milliseconds duration{};
};

/// Which cases of a suite run.
struct ContractOptions {
    /// Only the cases whose name contains this text (case-sensitive); empty: every case.
    std::string filter;
};

namespace detail::contract {
class Runner;
}

/// What a contract suite found: the cases that ran, and every failed check. `ok()` when no case failed and
/// at least one passed (a filter that matches no case is not a pass).
class ContractReport {
  public:
    ContractReport() = default;
    ContractReport(std::string suite, std::string subject, std::string filter = {})
        : suite_(std::move(suite)), subject_(std::move(subject)), filter_(std::move(filter)) {}

    [[nodiscard]] bool ok() const noexcept { return count(passed) > 0 && count(failed) == 0; }

    /// The suite ("event store contract"), and what it ran on (the fixture's `name`, when it has one).
    [[nodiscard]] const std::string& suite() const noexcept { return suite_; }
    [[nodiscard]] const std::string& subject() const noexcept { return subject_; }
    [[nodiscard]] const std::vector<ContractCaseResult>& cases() const noexcept { return cases_; }
    [[nodiscard]] const std::vector<ContractFailure>& failures() const noexcept { return failures_; }

    /// The names of the cases that failed, in the order they ran.
    [[nodiscard]] std::vector<std::string> failed_cases() const {
        std::vector<std::string> names;
        for (const auto& c : cases_)
            if (c.outcome == failed) names.push_back(c.name);
        return names;
    }
    /// Whether the case of that exact name ran and failed (passed, skipped).
    [[nodiscard]] bool failed_case(std::string_view name) const { return has(name, failed); }
    [[nodiscard]] bool passed_case(std::string_view name) const { return has(name, passed); }
    [[nodiscard]] bool skipped_case(std::string_view name) const { return has(name, skipped); }

    /// A summary line, then each failed case with its failed checks, then the skipped cases, for a human.
    [[nodiscard]] std::string str() const {
        std::string out = suite_.empty() ? std::string{"contract"} : suite_;
        if (!subject_.empty()) out += " on " + subject_;
        out += ": ";
        if (cases_.empty()) {
            out += filter_.empty() ? "no case ran\n"
                                   : "no case matches the filter " + krmx::detail::quoted(filter_) + "\n";
            return out;
        }
        std::chrono::milliseconds total{};
        for (const auto& c : cases_) total += c.duration;
        out += std::to_string(cases_.size()) + (cases_.size() == 1 ? " case, " : " cases, ") +
               std::to_string(count(passed)) + " passed, " + std::to_string(count(failed)) + " failed";
        if (count(skipped) > 0) out += ", " + std::to_string(count(skipped)) + " skipped";
        if (!filter_.empty()) out += " (filter " + krmx::detail::quoted(filter_) + ")";
        out += " in " + std::to_string(total.count()) + " ms\n";
        for (const auto& c : cases_) {
            if (c.outcome != failed) continue;
            out += "FAILED: " + c.name + "\n";
            for (const auto& f : failures_) {
                if (f.case_name != c.name) continue;
                out += "  ";
                if (!f.file.empty()) out += f.file + ":" + std::to_string(f.line) + ": ";
                out += f.check + "\n";
                if (!f.values.empty()) out += "    with " + f.values + "\n";
                for (const auto& context : f.context) out += "    while " + context + "\n";
            }
        }
        for (const auto& c : cases_) {
            if (c.outcome == skipped) out += "skipped: " + c.name + " (" + c.skip_reason + ")\n";
        }
        return out;
    }

    friend std::ostream& operator<<(std::ostream& out, const ContractReport& report) {
        return out << report.str();
    }

  private:
    friend class detail::contract::Runner;
    static constexpr auto passed = ContractCaseResult::Outcome::passed;
    static constexpr auto failed = ContractCaseResult::Outcome::failed;
    static constexpr auto skipped = ContractCaseResult::Outcome::skipped;

    [[nodiscard]] std::size_t count(ContractCaseResult::Outcome outcome) const noexcept {
        std::size_t n = 0;
        for (const auto& c : cases_) n += c.outcome == outcome ? 1 : 0;
        return n;
    }
    [[nodiscard]] bool has(std::string_view name, ContractCaseResult::Outcome outcome) const {
        for (const auto& c : cases_)
            if (c.name == name) return c.outcome == outcome;
        return false;
    }

    std::string suite_;
    std::string subject_;
    std::string filter_;
    std::vector<ContractCaseResult> cases_;
    std::vector<ContractFailure> failures_;
};

namespace detail::contract {

/// Thrown to end a case after a failed KRMX_REQUIRE or a KRMX_FAIL; not a std::exception, so that a case's
/// own `catch (const std::exception&)` lets it pass.
struct CaseStopped {};
/// Thrown by ContractChecks::skip.
struct CaseSkipped {
    std::string reason;
};

/// At most `limit` bytes of `text`, marked when cut: a failure shows values, not megabytes.
[[nodiscard]] inline std::string clip(std::string text, std::size_t limit = 300) {
    if (text.size() > limit) {
        const std::size_t size = text.size();
        text.resize(limit);
        text += "... (" + std::to_string(size) + " bytes in all)";
    }
    return text;
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_time_point : std::false_type {};
template <class C, class D>
struct is_time_point<std::chrono::time_point<C, D>> : std::true_type {};

/// How a suite shows a value of its own types (AppendResult, Checkpoint, ...): specialised beside them.
template <class T>
struct Show;

template <class T>
concept streamable = requires(std::ostream& out, const T& value) {
    out << value;
};

/// `value` as a failure shows it: strings quoted and escaped, containers as {a, b}, cut when long.
template <class T>
[[nodiscard]] std::string show(const T& value) {
    if constexpr (requires { Show<T>::text(value); }) {
        return clip(Show<T>::text(value));
    } else if constexpr (std::is_same_v<T, bool>) {
        return value ? "true" : "false";
    } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
        return "nullptr";
    } else if constexpr (std::is_same_v<T, char>) {
        return krmx::detail::quoted(std::string_view{&value, 1});
    } else if constexpr (std::is_arithmetic_v<T>) {
        std::ostringstream out;
        if constexpr (std::is_floating_point_v<T>) out.precision(17);  // as many digits as tell doubles apart
        out << +value;
        return out.str();
    } else if constexpr (std::is_enum_v<T>) {
        return show(static_cast<std::underlying_type_t<T>>(value));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        return clip(krmx::detail::quoted(std::string_view{value}));
    } else if constexpr (std::is_same_v<T, nlohmann::json>) {
        return clip(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if constexpr (is_optional<T>::value) {
        return value ? show(*value) : std::string{"nullopt"};
    } else if constexpr (is_time_point<T>::value) {
        return std::to_string(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(value.time_since_epoch()).count()) +
               " ns after the epoch";
    } else if constexpr (requires {
                             { value.to_string() } -> std::convertible_to<std::string>;
                         }) {
        return clip(value.to_string());
    } else if constexpr (std::ranges::input_range<const T>) {
        constexpr std::size_t shown = 12;
        std::string out = "{";
        std::size_t n = 0;
        for (const auto& item : value) {
            if (n < shown) out += (n > 0 ? ", " : "") + show(item);
            ++n;
        }
        if (n > shown) out += ", ... (" + std::to_string(n) + " in all)";
        return out + "}";
    } else if constexpr (streamable<T>) {
        std::ostringstream out;
        out << value;
        return clip(out.str());
    } else {
        return "(a value that cannot be shown)";
    }
}

template <class T>
concept plain_integer =
    std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> && !std::same_as<T, wchar_t> &&
    !std::same_as<T, char8_t> && !std::same_as<T, char16_t> && !std::same_as<T, char32_t>;

/// `a == b`, comparing integers of different signedness by their values (as mathematics would).
template <class A, class B>
[[nodiscard]] bool equal(const A& a, const B& b) {
    if constexpr (plain_integer<A> && plain_integer<B>) {
        return std::cmp_equal(a, b);
    } else {
        return a == b;
    }
}

/// What is wrong with an exception caught by a KRMX_CHECK_THROWS...: empty when its what() contains
/// `*wanted` (or nothing is wanted).
template <class E>
[[nodiscard]] std::string lacks_text(const E& error, const std::string* wanted) {
    if constexpr (std::is_base_of_v<std::exception, E>) {
        if (wanted != nullptr && std::string_view{error.what()}.find(*wanted) == std::string_view::npos)
            return std::string{"it said: "} + error.what();
    } else {
        (void)error;
        (void)wanted;
    }
    return {};
}

/// The message of the exception in flight, for a failure.
[[nodiscard]] inline std::string current_exception_text() {
    try {
        throw;
    } catch (const std::exception& e) {
        return std::string{"an exception: "} + e.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

/// The path of `file` from its include root ("krmx/testing/contract.hpp"), else as it is.
[[nodiscard]] inline std::string short_file(std::string_view file) {
    const auto at = file.rfind("include/");
    if (at != std::string_view::npos) file.remove_prefix(at + 8);
    return std::string{file};
}

}  // namespace detail::contract

/// What a contract case checks with (through the KRMX_CHECK... macros): it records each failed check with the
/// case's name, and whatever the case said it was doing (`info`).
class ContractChecks {
  public:
    explicit ContractChecks(std::string case_name) : case_name_(std::move(case_name)) {}
    ContractChecks(const ContractChecks&) = delete;
    ContractChecks& operator=(const ContractChecks&) = delete;

    /// A case records this many failed checks at most (a check in a loop over 20 000 events must not
    /// bury the report); the rest are counted.
    static constexpr std::size_t max_failures = 12;

    /// Records a failed check (nothing when `passed`); returns `passed`.
    bool record(bool passed, std::string_view check, std::string values, const char* file, unsigned line) {
        if (!passed) {
            if (failures_.size() < max_failures) {
                failures_.push_back(ContractFailure{case_name_, std::string{check}, std::move(values),
                                                    detail::contract::short_file(file), line, context_});
            } else {
                ++more_failures_;
            }
        }
        return passed;
    }

    /// Ends the case (after a failed requirement).
    [[noreturn]] void stop() { throw detail::contract::CaseStopped{}; }
    /// Ends the case as skipped: what it checks does not apply to this store (say why).
    [[noreturn]] void skip(std::string reason) { throw detail::contract::CaseSkipped{std::move(reason)}; }

    /// While the returned guard lives, failures say "while <text>" (strings as they are, other values
    /// shown as in failures).
    class [[nodiscard]] Info {
      public:
        Info(const Info&) = delete;
        Info& operator=(const Info&) = delete;
        ~Info() { checks_->context_.pop_back(); }

      private:
        friend class ContractChecks;
        Info(ContractChecks& checks, std::string text) : checks_(&checks) {
            checks_->context_.push_back(std::move(text));
        }
        ContractChecks* checks_;
    };
    template <class... Parts>
    [[nodiscard]] Info info(const Parts&... parts) {
        std::string text;
        ((text += piece(parts)), ...);
        return Info{*this, std::move(text)};
    }

    [[nodiscard]] const std::string& case_name() const noexcept { return case_name_; }
    [[nodiscard]] const std::vector<ContractFailure>& failures() const noexcept { return failures_; }
    /// Failed checks beyond max_failures.
    [[nodiscard]] std::size_t more_failures() const noexcept { return more_failures_; }

  private:
    template <class T>
    static std::string piece(const T& part) {
        if constexpr (std::is_convertible_v<const T&, std::string_view>) {
            return detail::contract::clip(std::string{std::string_view{part}}, 200);
        } else {
            return detail::contract::show(part);
        }
    }

    std::string case_name_;
    std::vector<std::string> context_;
    std::vector<ContractFailure> failures_;
    std::size_t more_failures_ = 0;
};

namespace detail::contract {

/// A case of a suite: its name and the function that runs it.
struct Case {
    std::string_view name;
    void (*run)(ContractChecks&);
};

/// Runs the cases that pass the filter, one after the other, into a report.
class Runner {
  public:
    [[nodiscard]] static ContractReport run(std::string suite, std::string subject,
                                            std::span<const Case> cases, const ContractOptions& options) {
        ContractReport report{std::move(suite), std::move(subject), options.filter};
        for (const Case& c : cases) {
            if (!options.filter.empty() && c.name.find(options.filter) == std::string_view::npos) continue;
            ContractChecks checks{std::string{c.name}};
            ContractCaseResult result;
            result.name = std::string{c.name};
            const auto started = std::chrono::steady_clock::now();
            try {
                c.run(checks);
            } catch (const CaseStopped&) {
                // the failure that stopped it is recorded
            } catch (const CaseSkipped& skip) {
                result.outcome = ContractCaseResult::Outcome::skipped;
                result.skip_reason = skip.reason;
            } catch (...) {
                (void)checks.record(false, "the case threw " + current_exception_text(), {}, "", 0);
            }
            result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started);
            if (!checks.failures().empty()) result.outcome = ContractCaseResult::Outcome::failed;
            report.failures_.insert(report.failures_.end(), checks.failures().begin(),
                                    checks.failures().end());
            if (checks.more_failures() > 0) {
                ContractFailure more;
                more.case_name = result.name;
                more.check = "... and " + std::to_string(checks.more_failures()) + " more failed checks";
                report.failures_.push_back(std::move(more));
            }
            report.cases_.push_back(std::move(result));
        }
        return report;
    }
};

/// The fixture's `name`, when it has one.
template <class Fixture>
[[nodiscard]] std::string subject_name() {
    if constexpr (requires { std::string{Fixture::name}; }) {
        return std::string{Fixture::name};
    } else {
        return {};
    }
}

}  // namespace detail::contract

}  // namespace krmx::testing

// ---- the checks of a case: `checks` is the case's ContractChecks ----
// The expression a check is about comes last, so that braces with commas in it need no parentheses.

/// Checks that the condition holds.
#define KRMX_CHECK(checks, ...) \
    static_cast<void>((checks).record(static_cast<bool>(__VA_ARGS__), #__VA_ARGS__, {}, __FILE__, __LINE__))
/// Checks that the condition does not hold.
#define KRMX_CHECK_FALSE(checks, ...) \
    static_cast<void>(                \
        (checks).record(!static_cast<bool>(__VA_ARGS__), "!(" #__VA_ARGS__ ")", {}, __FILE__, __LINE__))
/// Checks that `actual == expected`, showing both values when not.
#define KRMX_CHECK_EQ(checks, actual, ...) \
    static_cast<void>(KRMX_DETAIL_CONTRACT_EQ(checks, actual, __VA_ARGS__))
/// Checks the condition, and ends the case when it does not hold.
#define KRMX_REQUIRE(checks, ...)                                                                   \
    do {                                                                                            \
        if (!(checks).record(static_cast<bool>(__VA_ARGS__), #__VA_ARGS__, {}, __FILE__, __LINE__)) \
            (checks).stop();                                                                        \
    } while (false)
/// Checks that `actual == expected`, and ends the case when not.
#define KRMX_REQUIRE_EQ(checks, actual, ...)                                        \
    do {                                                                            \
        if (!KRMX_DETAIL_CONTRACT_EQ(checks, actual, __VA_ARGS__)) (checks).stop(); \
    } while (false)
/// Records a failure that says `message`, and ends the case.
#define KRMX_FAIL(checks, ...)                                                                         \
    do {                                                                                               \
        (void)(checks).record(false, std::string{"failed: "} + std::string{__VA_ARGS__}, {}, __FILE__, \
                              __LINE__);                                                               \
        (checks).stop();                                                                               \
    } while (false)
/// Checks that the text contains `part`.
#define KRMX_CHECK_CONTAINS(checks, part, ...)                                                             \
    do {                                                                                                   \
        const std::string krmx_text_{__VA_ARGS__};                                                         \
        const std::string krmx_part_{part};                                                                \
        (void)(checks).record(krmx_text_.find(krmx_part_) != std::string::npos,                            \
                              #__VA_ARGS__ " contains " #part,                                             \
                              ::krmx::testing::detail::contract::show(krmx_text_) + " does not contain " + \
                                  ::krmx::testing::detail::contract::show(krmx_part_),                     \
                              __FILE__, __LINE__);                                                         \
    } while (false)
/// Checks that the expression throws a `Type` (or something derived from it).
#define KRMX_CHECK_THROWS_AS(checks, Type, ...) \
    KRMX_DETAIL_CONTRACT_THROWS(checks, Type, #__VA_ARGS__ " throws " #Type, nullptr, __VA_ARGS__)
/// Checks that the expression throws a `Type` whose what() contains `part`.
#define KRMX_CHECK_THROWS_CONTAINING(checks, Type, part, ...)                                              \
    do {                                                                                                   \
        const std::string krmx_wanted_{part};                                                              \
        KRMX_DETAIL_CONTRACT_THROWS(                                                                       \
            checks, Type, #__VA_ARGS__ " throws " #Type " saying " + ::krmx::detail::quoted(krmx_wanted_), \
            &krmx_wanted_, __VA_ARGS__);                                                                   \
    } while (false)

#define KRMX_DETAIL_CONTRACT_EQ(checks, actual, ...)                                                         \
    [&](const auto& krmx_actual_, const auto& krmx_expected_, const char* krmx_file_, unsigned krmx_line_) { \
        const bool krmx_equal_ = ::krmx::testing::detail::contract::equal(krmx_actual_, krmx_expected_);     \
        return (checks).record(krmx_equal_, #actual " == " #__VA_ARGS__,                                     \
                               krmx_equal_                                                                   \
                                   ? std::string{}                                                           \
                                   : ::krmx::testing::detail::contract::show(krmx_actual_) +                 \
                                         " == " + ::krmx::testing::detail::contract::show(krmx_expected_),   \
                               krmx_file_, krmx_line_);                                                      \
    }((actual), (__VA_ARGS__), __FILE__, __LINE__)

#define KRMX_DETAIL_CONTRACT_THROWS(checks, Type, what, wanted, ...)                                 \
    do {                                                                                             \
        std::string krmx_wrong_;                                                                     \
        try {                                                                                        \
            static_cast<void>(__VA_ARGS__);                                                          \
            krmx_wrong_ = "nothing was thrown";                                                      \
        } catch (const Type& krmx_error_) {                                                          \
            krmx_wrong_ = ::krmx::testing::detail::contract::lacks_text(krmx_error_, (wanted));      \
        } catch (...) {                                                                              \
            krmx_wrong_ = "it threw " + ::krmx::testing::detail::contract::current_exception_text(); \
        }                                                                                            \
        (void)(checks).record(krmx_wrong_.empty(), what, krmx_wrong_, __FILE__, __LINE__);           \
    } while (false)
