// Levelled, structured logging with the MPI rank and the request being handled on every line,
// behind a string interface: the message is built with operator<< like error messages, so this
// header pulls in no formatting library (LibTorch ships its own {fmt}, which must not meet
// spdlog's in one translation unit).
//
//   ARGENT_LOG(kInfo, "rank ", rank, ": ", n, " partitions");
//
// Text lines:  [2026-11-25 08:00:00.123] [info] [rank 0] [req 17] gateway: ...
// JSON lines:  {"ts":"2026-11-25T08:00:00.123","level":"info","rank":0,"req":17,"msg":"..."}
// `req` is "-" (JSON: null) outside a request (LogRequestScope).
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace argent {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kCritical };

// Sets the level ("trace".."off"), the format ("text" or "json") and the line prefix; `rank` < 0
// keeps the rank set before (none at first). May be called again (e.g. once the rank is known).
// Throws Error(kInvalidArgument) for an unknown level or format.
void init_logging(const std::string& level, int rank = -1, const std::string& format = "");
bool log_enabled(LogLevel level);
void log_line(LogLevel level, const std::string& message);

// While alive, lines logged by this thread carry `request_id`. Nests (the inner id wins).
class LogRequestScope {
 public:
  explicit LogRequestScope(uint64_t request_id);
  ~LogRequestScope();
  LogRequestScope(const LogRequestScope&) = delete;
  LogRequestScope& operator=(const LogRequestScope&) = delete;

 private:
  bool had_previous_;
  uint64_t previous_;
};

}  // namespace argent

#define ARGENT_LOG(level, ...)                                                   \
  do {                                                                           \
    if (::argent::log_enabled(::argent::LogLevel::level))                        \
      ::argent::log_line(::argent::LogLevel::level, ::argent::detail::concat(__VA_ARGS__)); \
  } while (0)
