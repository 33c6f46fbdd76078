#pragma once
// An allocator for arrays that grow large (a stream's log of a million events): blocks of 2 MiB and more
// are mapped on their own, aligned to 2 MiB and marked for transparent huge pages on Linux, so that
// filling one costs one page fault per 2 MiB instead of one per 4 KiB. Replaying a million events into a
// Stream touched about 96 MB of log (the final array and the ones it grew through) in 24 000 faults,
// half the replay's CPU time on a virtual machine where a fault costs microseconds. Smaller blocks come
// from operator new as usual.

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace krmx::detail {

// Under AddressSanitizer every block comes from operator new, so that it checks the large ones too.
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer)
#define KRMX_DETAIL_MAP_LARGE_BLOCKS 1
#endif
#else
#define KRMX_DETAIL_MAP_LARGE_BLOCKS 1
#endif
#endif

/// Whether LargeAllocator maps large blocks itself (Linux, not under AddressSanitizer).
#if defined(KRMX_DETAIL_MAP_LARGE_BLOCKS)
inline constexpr bool maps_large_blocks = true;
#else
inline constexpr bool maps_large_blocks = false;
#endif

template <class T>
class LargeAllocator {
  public:
    using value_type = T;

    LargeAllocator() noexcept = default;
    template <class U>
    explicit LargeAllocator(const LargeAllocator<U>&) noexcept {}

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > max_elements) throw std::bad_array_new_length();
        const std::size_t bytes = n * sizeof(T);
#if defined(KRMX_DETAIL_MAP_LARGE_BLOCKS)
        if (bytes >= huge_page) {
            const std::size_t length = rounded(bytes);
            // Map one huge page more than needed, then cut the ends off so that the block is aligned.
            void* mapped = ::mmap(nullptr, length + huge_page, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mapped == MAP_FAILED) throw std::bad_alloc();
            auto* base = static_cast<char*>(mapped);
            const std::size_t offset =
                (huge_page - reinterpret_cast<std::uintptr_t>(base) % huge_page) % huge_page;
            if (offset > 0) (void)::munmap(base, offset);
            if (huge_page - offset > 0) (void)::munmap(base + offset + length, huge_page - offset);
            (void)::madvise(base + offset, length, MADV_HUGEPAGE);  // a hint: without THP, plain pages
            return reinterpret_cast<T*>(base + offset);
        }
#endif
        return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
    }

    void deallocate(T* p, [[maybe_unused]] std::size_t n) noexcept {
#if defined(KRMX_DETAIL_MAP_LARGE_BLOCKS)
        if (n * sizeof(T) >= huge_page) {
            (void)::munmap(p, rounded(n * sizeof(T)));
            return;
        }
#endif
        ::operator delete (p, std::align_val_t{alignof(T)});
    }

    template <class U>
    friend bool operator==(const LargeAllocator&, const LargeAllocator<U>&) noexcept {
        return true;
    }

  private:
    static constexpr std::size_t huge_page = std::size_t{2} << 20;
    static constexpr std::size_t max_elements = (static_cast<std::size_t>(-1) - 2 * huge_page) / sizeof(T);

    static constexpr std::size_t rounded(std::size_t bytes) noexcept {
        return (bytes + huge_page - 1) / huge_page * huge_page;
    }
};

}  // namespace krmx::detail
