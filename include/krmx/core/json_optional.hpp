#pragma once
// std::optional payloads and members: null <-> empty. nlohmann/json 3.11 has no built-in conversion for
// std::optional; this specialization provides it. Define KRMX_NO_OPTIONAL_SERIALIZER if your code
// already specializes nlohmann::adl_serializer<std::optional<T>>.

#include <optional>

#include <nlohmann/json.hpp>

#if !defined(KRMX_NO_OPTIONAL_SERIALIZER)
NLOHMANN_JSON_NAMESPACE_BEGIN
template <class T>
struct adl_serializer<std::optional<T>> {
    template <class BasicJson>
    static void to_json(BasicJson& j, const std::optional<T>& value) {
        if (value) {
            j = *value;
        } else {
            j = nullptr;
        }
    }
    template <class BasicJson>
    static void from_json(const BasicJson& j, std::optional<T>& value) {
        if (j.is_null()) {
            value.reset();
        } else {
            value = j.template get<T>();
        }
    }
};
NLOHMANN_JSON_NAMESPACE_END
#endif
