// Payload conversion is strict at every depth, for every payload type, with nothing extra to write: a
// number where a flag belongs, a flag where a number belongs, or a fraction where an integer belongs is
// refused, as the TypeScript reference (zod) refuses it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <krmx/stream/stream.hpp>

#include "catch.hpp"

namespace {

struct World {
    int age = 0;
    double gravity = 9.8;
    bool inhabited = false;
    std::vector<std::uint8_t> moons;
    friend bool operator==(const World&, const World&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(World, age, gravity, inhabited, moons)

struct Planet {
    std::string name;
    World world;
    std::optional<int> rank;
    std::map<std::string, int> scores;
    friend bool operator==(const Planet&, const Planet&) = default;
};
// Optional and missing members are the user's choice: defaults where absent.
void to_json(nlohmann::json& j, const Planet& p) {
    j = {{"name", p.name}, {"world", p.world}, {"scores", p.scores}};
    if (p.rank) j["rank"] = *p.rank;
}
void from_json(const nlohmann::json& j, Planet& p) {
    j.at("name").get_to(p.name);
    j.at("world").get_to(p.world);
    if (j.contains("rank")) p.rank = j.at("rank").get<int>();
    if (j.contains("scores")) j.at("scores").get_to(p.scores);
}

struct Universe {
    std::vector<Planet> planets;
};

inline constexpr krmx::EventType<int> set_int{"int"};
inline constexpr krmx::EventType<double> set_double{"double"};
inline constexpr krmx::EventType<bool> set_bool{"bool"};
inline constexpr krmx::EventType<Planet> add{"add"};
inline constexpr krmx::EventType<std::vector<int>> list{"list"};

const krmx::StreamModel<Universe>& model() {
    static const auto m = krmx::StreamModel<Universe>{}
                              .when(set_int, [](Universe&, std::string_view, int) {})
                              .when(set_double, [](Universe&, std::string_view, double) {})
                              .when(set_bool, [](Universe&, std::string_view, bool) {})
                              .when(add, [](Universe& u, std::string_view, const Planet& p) {
                                  u.planets.push_back(p);
                              })
                              .when(list, [](Universe&, std::string_view, const std::vector<int>&) {});
    return m;
}

krmx::Outcome outcome_of(const std::string& text) {
    krmx::Stream<Universe> stream{model()};
    const auto from_text = stream.dispatch_text("u", text).outcome();
    const auto from_json = stream.dispatch("u", nlohmann::json::parse(text)).outcome();
    CHECK(from_text == from_json);  // the server's text path and the client's DOM path agree
    return from_text;
}

}  // namespace

TEST_CASE("a flag is not a number and a number is not a flag, at the top level") {
    CHECK(outcome_of(R"({"type":"int","payload":true})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"int","payload":false})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"double","payload":true})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"bool","payload":1})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"int","payload":3})") == krmx::Outcome::accepted);
    CHECK(outcome_of(R"({"type":"int","payload":3.0})") == krmx::Outcome::accepted);
    CHECK(outcome_of(R"({"type":"double","payload":3})") == krmx::Outcome::accepted);
}

TEST_CASE("numbers nested in struct payloads are as strict as top-level ones") {
    const auto planet = [](const std::string& world) {
        return R"({"type":"add","payload":{"name":"x","world":)" + world + "}}";
    };
    CHECK(outcome_of(planet(R"({"age":2,"gravity":1.5,"inhabited":true,"moons":[1,2]})")) ==
          krmx::Outcome::accepted);
    CHECK(outcome_of(planet(R"({"age":2.0,"gravity":1,"inhabited":false,"moons":[]})")) ==
          krmx::Outcome::accepted);
    for (const std::string world : {
             R"({"age":2.5,"gravity":1,"inhabited":true,"moons":[]})",
             R"({"age":true,"gravity":1,"inhabited":true,"moons":[]})",
             R"({"age":2,"gravity":true,"inhabited":true,"moons":[]})",
             R"({"age":2,"gravity":1,"inhabited":1,"moons":[]})",
             R"({"age":2,"gravity":1,"inhabited":true,"moons":[256]})",
             R"({"age":2,"gravity":1,"inhabited":true,"moons":[-1]})",
             R"({"age":2,"gravity":1,"inhabited":true,"moons":[1.5]})",
             R"({"age":1e20,"gravity":1,"inhabited":true,"moons":[]})",
             R"({"age":-1e300,"gravity":1,"inhabited":true,"moons":[]})",
             R"({"age":4294967296,"gravity":1,"inhabited":true,"moons":[]})",
             R"({"age":"2","gravity":1,"inhabited":true,"moons":[]})",
         }) {
        INFO(world);
        CHECK(outcome_of(planet(world)) == krmx::Outcome::invalid_payload);
    }
    CHECK(outcome_of(R"({"type":"list","payload":[1,2.5]})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"list","payload":[1,true]})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(R"({"type":"list","payload":[1,2.0,-3]})") == krmx::Outcome::accepted);
    const std::string base = R"({"type":"add","payload":{"name":"x","world":{"age":2,"gravity":1,"inhabited":true,"moons":[]})";
    CHECK(outcome_of(base + R"(,"rank":1.5}})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(base + R"(,"scores":{"a":1,"b":false}}})") == krmx::Outcome::invalid_payload);
    CHECK(outcome_of(base + R"(,"scores":{"a":1,"b":2}}})") == krmx::Outcome::accepted);
    CHECK(outcome_of(base + R"(,"unknown":[true,2.5]}})") == krmx::Outcome::accepted);  // not read: not judged
}

TEST_CASE("a refused nested payload names the path and what was wrong") {
    krmx::Stream<Universe> stream{model()};
    const auto r = stream.dispatch_text(
        "u", R"({"type":"add","payload":{"name":"x","world":{"age":2.5,"gravity":1,"inhabited":true,"moons":[]}}})");
    CHECK(r.outcome() == krmx::Outcome::invalid_payload);
    CHECK_THAT(std::string{r.reason()}, Catch::Matchers::Contains("payload.world.age"));
    CHECK(stream.size() == 0);
}
