#include "launch/result_lines.h"

#include <cstdio>

namespace argent {

void print_result_line(std::string* line, int64_t query, const float* scores, const int64_t* ids,
                       int64_t k) {
  char buf[64];
  line->assign("{\"query\": ");
  line->append(std::to_string(query));
  line->append(", \"ids\": [");
  int64_t found = 0;
  while (found < k && ids[found] != -1) ++found;
  for (int64_t i = 0; i < found; ++i) {
    if (i) line->append(", ");
    line->append(std::to_string(ids[i]));
  }
  line->append("], \"scores\": [");
  for (int64_t i = 0; i < found; ++i) {
    std::snprintf(buf, sizeof buf, i ? ", %.9g" : "%.9g", double(scores[i]));
    line->append(buf);
  }
  line->append("]}\n");
  std::fwrite(line->data(), 1, line->size(), stdout);
}

}  // namespace argent
