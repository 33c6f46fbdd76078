#pragma once
// KRMX_DEFINE_VIEW(Type, member...): what NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Type, member...) defines (to_json
// and from_json, an object with a member per listed field), and a writer that lets a ProjectionDomain skip
// the JSON tree when it computes a user's view:
//
//   struct Seat { std::vector<int> hand; std::map<std::string, std::size_t> held; std::optional<int> top; };
//   KRMX_DEFINE_VIEW(Seat, hand, held, top)
//
// Use it at namespace scope, in Type's namespace, as nlohmann's macro. The JSON is the same either way; with
// this macro a domain writes each view straight into the compact form it diffs (1.6-1.7x the actions per
// second in the projection benchmark). Members of types nlohmann converts itself, of types defined with this
// macro, and nlohmann::json are written directly; members of other types (enums, types with a to_json of
// their own) through their to_json, and so are types derived from Type (their to_json may leave members
// out). Up to 63 members; a member listed twice does not compile.

#include <array>
#include <concepts>
#include <string_view>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/tape_writer.hpp"

#define KRMX_DETAIL_VIEW_NAME(member) ::std::string_view{#member},
#define KRMX_DETAIL_VIEW_MEMBER(member) , krmx_view.member

#define KRMX_DEFINE_VIEW(Type, ...)                                                                         \
    NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Type, __VA_ARGS__)                                                   \
    template <class KrmxType> /* Type only: a derived type's to_json may leave members out */             \
        requires ::std::same_as<KrmxType, Type>                                                             \
    void krmx_write_tape(::krmx::detail::TapeWriter& krmx_writer, const KrmxType& krmx_view) {              \
        static constexpr ::std::array krmx_names{                                                           \
            NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(KRMX_DETAIL_VIEW_NAME, __VA_ARGS__))};                 \
        static_assert(::krmx::detail::distinct_member_names(krmx_names),                                    \
                      "KRMX_DEFINE_VIEW(" #Type ", ...): a member is listed twice");                        \
        static constexpr auto krmx_order = ::krmx::detail::member_order(krmx_names);                        \
        ::krmx::detail::write_members(krmx_writer, krmx_names, krmx_order NLOHMANN_JSON_EXPAND(          \
                                          NLOHMANN_JSON_PASTE(KRMX_DETAIL_VIEW_MEMBER, __VA_ARGS__)));      \
    }
