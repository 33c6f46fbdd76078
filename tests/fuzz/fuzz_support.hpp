#pragma once
// Shared by the libFuzzer harnesses: a failed check aborts with a message, which libFuzzer reports as a
// crash with the input that caused it.
#include <cstdio>
#include <cstdlib>

#define KRMX_FUZZ_CHECK(condition)                                                                    \
    do {                                                                                              \
        if (!(condition)) {                                                                           \
            std::fprintf(stderr, "krmx fuzz check failed: %s (%s:%d)\n", #condition, __FILE__, __LINE__); \
            std::abort();                                                                             \
        }                                                                                             \
    } while (false)
