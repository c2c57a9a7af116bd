// Levelled logging with the MPI rank on every line, behind a string interface: the message is
// built with operator<< like error messages, so this header pulls in no formatting library
// (LibTorch ships its own {fmt}, which must not meet spdlog's in one translation unit).
//
//   ARGENT_LOG(kInfo, "rank ", rank, ": ", n, " partitions");
#pragma once

#include <string>

#include "common/error.h"

namespace argent {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kCritical };

// Sets the level ("trace".."off") and the line prefix; `rank` < 0 omits the rank field. May be
// called again (e.g. once the rank is known). Throws Error(kInvalidArgument) for an unknown level.
void init_logging(const std::string& level, int rank = -1);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, const std::string& message);

}  // namespace argent

#define ARGENT_LOG(level, ...)                                                   \
  do {                                                                           \
    if (::argent::log_enabled(::argent::LogLevel::level))                        \
      ::argent::log_line(::argent::LogLevel::level, ::argent::detail::concat(__VA_ARGS__)); \
  } while (0)
