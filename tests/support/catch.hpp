// One include for both Catch2 generations: Debian 12 ships Catch2 2.13, newer systems Catch2 3.
#pragma once
#if defined(KRMX_CATCH2_V3)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
