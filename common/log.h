// Structured, levelled logging: spdlog with the rank on every line.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace argent {

// Sets the global logger's level ("trace".."off") and pattern; `rank` < 0 omits the rank field.
// Throws Error(kInvalidArgument) for an unknown level name.
void init_logging(const std::string& level, int rank = -1);

}  // namespace argent
