// The JSON-lines result format shared by `argent search` and `argent query`, so their outputs
// can be compared line by line: {"query": 0, "ids": [...], "scores": [...]}.
#pragma once

#include <cstdint>
#include <string>

namespace argent {

// Appends one line to `line` (cleared first) and writes it to stdout. Stops at the first -1 id
// (padding) or after k results; "%.9g" round-trips a float exactly.
void print_result_line(std::string* line, int64_t query, const float* scores, const int64_t* ids,
                       int64_t k);

}  // namespace argent
