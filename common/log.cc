#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace argent {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kCritical: return spdlog::level::critical;
  }
  return spdlog::level::info;
}

}  // namespace

void init_logging(const std::string& level, int rank) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  ARGENT_CHECK(parsed != spdlog::level::off || level == "off", "--log-level: unknown level '",
               level, "' (trace, debug, info, warn, error, critical, off)");
  // Callable again (e.g. once the MPI rank is known): the named logger is replaced.
  spdlog::drop("argent");
  auto logger = spdlog::stderr_color_mt("argent");
  logger->set_level(parsed);
  logger->set_pattern(rank >= 0 ? "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [rank " + std::to_string(rank) + "] %v"
                                : "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
}

bool log_enabled(LogLevel level) { return spdlog::should_log(to_spdlog(level)); }

void log_line(LogLevel level, const std::string& message) {
  spdlog::log(to_spdlog(level), "{}", message);
}

}  // namespace argent
