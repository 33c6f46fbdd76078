#include <random>
#include <string>
#include <vector>

#include <krmx/core/detail/json_scan.hpp>
#include <krmx/core/message.hpp>

#include "catch.hpp"
#include "json_oracle.hpp"

using krmx::detail::JsonMember;
using krmx::detail::scan_object;
using krmx::detail::scan_value;

TEST_CASE("the scanner hands out an object's members exactly as written") {
    std::vector<JsonMember> members;
    const std::string text =
        R"( {"type":"increment", "payload" : 3.50e0 ,"z":{"a":[1,{"b":null}]},"s":"x\"y"} )";
    REQUIRE(scan_object(text, members).empty());
    REQUIRE(members.size() == 4);
    CHECK(members[0].key == "type");
    CHECK(members[0].value == R"("increment")");
    CHECK(members[1].value == "3.50e0");  // number spelling survives
    CHECK(members[2].value == R"({"a":[1,{"b":null}]})");
    CHECK(members[3].value == R"("x\"y")");
    CHECK(krmx::detail::json_string_value(members[3].value) == "x\"y");
    CHECK(krmx::detail::find_member(members, "payload") == &members[1]);
}

TEST_CASE("the scanner agrees with the reference grammar on what is valid JSON") {
    const std::vector<std::string> corpus = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5",
        "-1.5e+10",
        "1E5",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "\"\"",
        "\"\\u00e9\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"a\nb\"",
        "\"\xc3\xa9\"",
        "\"\xc3\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xc0\xaf\"",
        "true",
        "tru",
        "nul",
        "null ",
        " [1,2,]",
        "[1,,2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1}}",
        "[[[[]]]]",
        "[1 2]",
        "{\"a\":[1,{\"b\":[true,false,null]}]}",
        "",
        "   ",
        "\"unterminated",
        "[\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"]",
        "1 2",
        "{\"a\":\"\x01\"}",
        "-01",
        "2.e3",
        "[-]",
        // Narrowings of krmx's one grammar (json_scan.hpp says why).
        "1e400",
        "-1e400",
        "1.7976931348623157e308",
        "1.8e308",
        "1e-400",
        "0.0000000000000000000000000000001e-400",
        "0e99999999999999999999",
        "123456789012345678901234567890",
        "9007199254740992",
        "9007199254740993",
        "-9007199254740992",
        "-9007199254740993",
        "18446744073709551616",
        "9007199254740993.0",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":{\"b\":1,\"b\":1}}",
        "{\"a\":1,\"b\":{\"a\":2}}",
        "{\"\\u0000\":1,\"\":2}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"a\":11}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11}",
    };
    for (const auto& text : corpus) {
        INFO(text);
        CHECK(scan_value(text).empty() == krmx::testing::JsonOracle::accepts(text));
    }
}

TEST_CASE("a byte order mark is refused, as JavaScript's JSON.parse refuses it (nlohmann skips it)") {
    CHECK_FALSE(scan_value("\xef\xbb\xbf{}").empty());
}

TEST_CASE("random mutations of valid JSON are judged as the reference judges them") {
    const std::vector<std::string> seeds = {
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice","event":{"type":"increment","payload":3},"id":17}})",
        R"({"a":[1,2.5,-3e-2,true,false,null,"s\u00e9\n"],"b":{"c":{}}})",
    };
    const std::string alphabet = "{}[]\":,.-+eE0123456789truefalsn \\u\xc3\xa9\x01";
    std::mt19937 rng{20261124};
    int disagreements = 0;
    for (int round = 0; round < 20000; ++round) {
        std::string text = seeds[round % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const auto at = rng() % (text.size() + 1);
            switch (rng() % 3) {
                case 0:
                    text.insert(at, 1, alphabet[rng() % alphabet.size()]);
                    break;
                case 1:
                    if (at < text.size()) text.erase(at, 1);
                    break;
                default:
                    if (at < text.size()) text[at] = alphabet[rng() % alphabet.size()];
                    break;
            }
        }
        if (scan_value(text).empty() != krmx::testing::JsonOracle::accepts(text)) {
            ++disagreements;
            UNSCOPED_INFO(text);
        }
    }
    CHECK(disagreements == 0);
}

TEST_CASE("nesting beyond the limit is refused, not a stack overflow") {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    CHECK(scan_value(deep).find("nested too deeply") != std::string::npos);
    std::vector<JsonMember> members;
    CHECK_FALSE(scan_object("[1]", members).empty());
    CHECK(scan_object("{\"a\":1} x", members).find("unexpected text") != std::string::npos);
}

TEST_CASE("one pass collects the members of a nested object too") {
    std::vector<JsonMember> outer;
    std::vector<JsonMember> inner;
    const std::string text =
        R"({"type":"stream/append","payload":{"domain":"d","event":{"type":"x"},"id":1}})";
    REQUIRE(scan_object(text, outer, "payload", inner).empty());
    REQUIRE(outer.size() == 2);
    CHECK(outer[1].value == R"({"domain":"d","event":{"type":"x"},"id":1})");
    REQUIRE(inner.size() == 3);
    CHECK(inner[1].key == "event");
    CHECK(inner[1].value == R"({"type":"x"})");
    outer.clear();
    inner.clear();
    CHECK(scan_object(R"({"payload":[1]})", outer, "payload", inner).empty());
    CHECK(inner.empty());
    CHECK_FALSE(scan_object(R"({"payload":{"a":}})", outer, "payload", inner).empty());
}

TEST_CASE("escaped keys are found by their decoded name and decoded once") {
    std::vector<JsonMember> members;
    REQUIRE(scan_object(R"({"t\u0079pe":"x","\ud83d\ude00":1,"p":"\u00e9\n"})", members).empty());
    REQUIRE(krmx::detail::find_member(members, "type") == &members[0]);
    CHECK(krmx::detail::find_member(members, "\xf0\x9f\x98\x80") == &members[1]);
    CHECK(krmx::detail::json_string_value(members[2].value) == "\xc3\xa9\n");
    for (const std::string text : {R"("\u0041\u00e9\u4e2d\ud83d\ude00\/\b\f\r\t\"\\")", R"("plain")", R"("\u0000")"}) {
        INFO(text);
        REQUIRE(scan_value(text).empty());
        CHECK(krmx::detail::json_string_value(text) == nlohmann::json::parse(text).get<std::string>());
    }
}

TEST_CASE("the depth limit counts from the outermost value") {
    const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    CHECK(scan_value(nested(krmx::detail::json_max_event_depth)).empty());
    CHECK_FALSE(scan_value(nested(krmx::detail::json_max_event_depth + 1)).empty());
    CHECK(scan_value(nested(krmx::detail::json_max_message_depth), krmx::detail::json_max_message_depth).empty());
}

TEST_CASE("a message is read once: its members, its payload's, those of objects in its payload, with depths") {
    krmx::MessageReader reader;
    const std::string text =
        R"({"type":"stream/append","payload":{"domain":"d","event":{"type":"x","payload":[[1]]},"id":1,"n":{}},"extra":{"a":1}})";
    REQUIRE(reader.read(text).empty());
    const auto& message = reader.message();
    CHECK(message.text() == text);
    CHECK(message.type() == "stream/append");
    REQUIRE(message.payload_is_object());
    const auto* event = message.field("event");
    REQUIRE(event != nullptr);
    CHECK(event->value == R"({"type":"x","payload":[[1]]})");
    CHECK(event->depth == 3);  // the event object, and two arrays in it
    const auto members = message.members_of(*event);
    REQUIRE(members.size() == 2);
    CHECK(members[0].key == "type");
    CHECK(members[1].value == "[[1]]");
    CHECK(members[1].depth == 2);
    CHECK(message.field("id")->depth == 0);
    CHECK(message.members_of(*message.field("n")).empty());
    CHECK(message.field("n")->depth == 1);
    CHECK(message.field("a") == nullptr);  // members of objects outside the payload are not the payload's
    CHECK(message.field("missing") == nullptr);
    // Read again: nothing of the first message stays.
    REQUIRE(reader.read(R"({"t\u0079pe":"k\u0072mx/leave"})").empty());
    CHECK(reader.message().type() == "krmx/leave");
    CHECK(reader.message().payload().empty());
    CHECK_FALSE(reader.message().payload_is_object());
}

TEST_CASE("what is not a message says why, and a message nests at most the message depth") {
    krmx::MessageReader reader;
    CHECK(reader.read("[1]") == "expected a JSON object at byte 0");
    CHECK(reader.read(R"({"payload":1})") == "the message has no \"type\"");
    CHECK(reader.read(R"({"type":1})") == "the message's \"type\" is not a string");
    CHECK(reader.read(R"({"type":"a","type":"b"})").find("repeated key") != std::string::npos);
    CHECK(reader.read(R"({"type":"a","t\u0079pe":"b"})").find("repeated key") != std::string::npos);
    CHECK(reader.read(R"({"type":"a","payload":{"k":1,"k":2}})").find("repeated key") != std::string::npos);
    const auto deep = [](int levels) {  // levels of the whole message
        return R"({"type":"x","payload":)" + std::string(static_cast<std::size_t>(levels - 1), '[') +
               std::string(static_cast<std::size_t>(levels - 1), ']') + "}";
    };
    CHECK(reader.read(deep(krmx::detail::json_max_message_depth)).empty());
    CHECK_FALSE(reader.read(deep(krmx::detail::json_max_message_depth + 1)).empty());
}

TEST_CASE("keys of one length are compared, whatever their number") {
    // The repeated-key check is skipped only when no two keys could be equal (distinct lengths, no escapes).
    std::vector<JsonMember> members;
    CHECK_FALSE(scan_object(R"({"ab":1,"cd":2,"ef":3,"ab":4})", members).empty());
    members.clear();
    CHECK(scan_object(R"({"ab":1,"cd":2,"ef":3,"gh":4})", members).empty());
    std::string many = "{";
    for (int i = 0; i < 20; ++i) many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    members.clear();
    CHECK(scan_object(many + "\"k0x\":1}", members).empty());
    members.clear();
    CHECK_FALSE(scan_object(many + "\"k7\":1}", members).empty());  // the 21st key repeats the 8th
    const std::string long_key(100, 'k');
    members.clear();
    CHECK_FALSE(scan_object("{\"" + long_key + "\":1,\"" + long_key + "\":2}", members).empty());
}
