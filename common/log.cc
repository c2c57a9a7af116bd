#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

namespace argent {
namespace {

std::atomic<bool> g_json{false};
std::atomic<int> g_rank{-1};
thread_local bool t_has_request = false;
thread_local uint64_t t_request = 0;

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

// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace

void init_logging(const std::string& level, int rank, const std::string& format) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  ARGENT_CHECK(parsed != spdlog::level::off || level == "off", "--log-level: unknown level '",
               level, "' (trace, debug, info, warn, error, critical, off)");
  ARGENT_CHECK(format.empty() || format == "text" || format == "json", "--log-format: unknown '",
               format, "' (text, json)");
  if (!format.empty()) g_json = format == "json";
  if (rank >= 0) g_rank = rank;
  // Callable again (e.g. once the MPI rank is known): the named logger is replaced.
  spdlog::drop("argent");
  auto logger = spdlog::stderr_color_mt("argent");
  logger->set_level(parsed);
  const std::string r = g_rank >= 0 ? std::to_string(g_rank.load()) : "";
  if (g_json) {
    // log_line writes the request and message fields and closes the object.
    logger->set_pattern("{\"ts\":\"%Y-%m-%dT%H:%M:%S.%e\",\"level\":\"%l\",\"rank\":" +
                        (r.empty() ? std::string("null") : r) + ",%v}");
  } else {
    logger->set_pattern(r.empty() ? "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v"
                                  : "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [rank " + r + "] %v");
  }
  spdlog::set_default_logger(logger);
}

bool log_enabled(LogLevel level) { return spdlog::should_log(to_spdlog(level)); }

void log_line(LogLevel level, const std::string& message) {
  const std::string req = t_has_request ? std::to_string(t_request) : "";
  if (g_json) {
    spdlog::log(to_spdlog(level), "\"req\":{},\"msg\":{}", req.empty() ? "null" : req,
                json_string(message));
  } else {
    spdlog::log(to_spdlog(level), "[req {}] {}", req.empty() ? "-" : req, message);
  }
}

LogRequestScope::LogRequestScope(uint64_t request_id)
    : had_previous_(t_has_request), previous_(t_request) {
  t_has_request = true;
  t_request = request_id;
}

LogRequestScope::~LogRequestScope() {
  t_has_request = had_previous_;
  t_request = previous_;
}

}  // namespace argent
