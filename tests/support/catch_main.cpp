// Catch2 2's main, compiled once per build tree (Catch2 3 brings Catch2::Catch2WithMain instead).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
