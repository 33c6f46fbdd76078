// detail::LargeAllocator: small blocks from operator new, blocks of 2 MiB and more mapped on their own,
// aligned to 2 MiB (huge pages where the system gives them); a vector keeps its contents across both.

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "catch.hpp"
#include "krmx/core/detail/large_allocator.hpp"

namespace {

struct Record {
    std::uint64_t a;
    std::uint32_t b;
    std::uint32_t c;
};

}  // namespace

TEST_CASE("large blocks are aligned to 2 MiB and writable to their last byte; small ones come as usual",
          "[core][allocator]") {
    krmx::detail::LargeAllocator<Record> allocator;
    constexpr std::size_t huge_page = std::size_t{2} << 20;
    for (const std::size_t count :
         {std::size_t{1}, std::size_t{1000}, huge_page / sizeof(Record) - 1, huge_page / sizeof(Record),
          huge_page / sizeof(Record) + 1, std::size_t{3'000'001}}) {
        Record* block = allocator.allocate(count);
        REQUIRE(block != nullptr);
        CHECK(reinterpret_cast<std::uintptr_t>(block) % alignof(Record) == 0);
        if (krmx::detail::maps_large_blocks && count * sizeof(Record) >= huge_page)
            CHECK(reinterpret_cast<std::uintptr_t>(block) % huge_page == 0);
        for (std::size_t i = 0; i < count; ++i) block[i] = Record{i, static_cast<std::uint32_t>(i), 7};
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < count; ++i) sum += block[i].a;
        CHECK(sum == count * (count - 1) / 2);
        allocator.deallocate(block, count);
    }
    CHECK_THROWS_AS(allocator.allocate(static_cast<std::size_t>(-1) / sizeof(Record)),
                    std::bad_array_new_length);
}

TEST_CASE("a vector on the large allocator keeps its contents as it grows past 2 MiB and shrinks back",
          "[core][allocator]") {
    std::vector<std::string, krmx::detail::LargeAllocator<std::string>> names;
    for (int i = 0; i < 200'000; ++i) names.push_back("name-" + std::to_string(i));  // 6.4 MB of strings
    for (int i = 0; i < 200'000; i += 997)
        REQUIRE(names[static_cast<std::size_t>(i)] == "name-" + std::to_string(i));
    names.resize(10);
    names.shrink_to_fit();
    CHECK(names.back() == "name-9");
    auto copy = names;
    CHECK(copy == names);
}
