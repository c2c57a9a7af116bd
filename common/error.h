// Argent's one error-checking idiom.
//
//   ARGENT_CHECK(cond, parts...)        bad input from a caller, a client or a config file
//   ARGENT_CHECK_DATA(cond, parts...)   corrupt or truncated data read from disk or the wire
//   ARGENT_ASSERT(cond, parts...)       an internal invariant; a failure is an Argent bug
//   ARGENT_THROW(code, parts...)        any other condition, with an explicit ErrorCode
//   ARGENT_SYSCALL_CHECK(cond, parts...) a failed system call; appends strerror(errno)
//
// All throw argent::Error, which carries an ErrorCode that the gateway maps one-to-one onto the
// status enum of its replies. The message parts are streamed with operator<<, so messages read
// like "search: query dim 127 != index dim 128" without a format-string dependency (this header
// is also compiled by nvcc).
#pragma once

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace argent {

enum class ErrorCode {
  kInvalidArgument,
  kDataLoss,
  kInternal,
  kIo,
  kNotFound,
  kResourceExhausted,
  kDeadlineExceeded,
  kUnavailable,
  kUnauthenticated,
  kPermissionDenied,
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

[[noreturn]] void throw_error(ErrorCode code, const char* file, int line, const std::string& what);

}  // namespace detail
}  // namespace argent

#define ARGENT_THROW(code, ...) \
  ::argent::detail::throw_error(code, __FILE__, __LINE__, ::argent::detail::concat(__VA_ARGS__))

#define ARGENT_CHECK(cond, ...)                                            \
  do {                                                                     \
    if (!(cond)) ARGENT_THROW(::argent::ErrorCode::kInvalidArgument, __VA_ARGS__); \
  } while (0)

#define ARGENT_CHECK_DATA(cond, ...)                                 \
  do {                                                               \
    if (!(cond)) ARGENT_THROW(::argent::ErrorCode::kDataLoss, __VA_ARGS__); \
  } while (0)

#define ARGENT_ASSERT(cond, ...)                                                             \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ARGENT_THROW(::argent::ErrorCode::kInternal, "internal error: ", #cond, ": ", __VA_ARGS__); \
  } while (0)

#define ARGENT_SYSCALL_CHECK(cond, ...)                                                  \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      const int argent_errno_ = errno;                                                   \
      ARGENT_THROW(::argent::ErrorCode::kIo, __VA_ARGS__, ": ", std::strerror(argent_errno_)); \
    }                                                                                    \
  } while (0)
