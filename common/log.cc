#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/error.h"

namespace argent {

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

}  // namespace argent
