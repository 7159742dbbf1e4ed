// main.cpp — the doctest runner for every tests/unit/<concept>_test.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
