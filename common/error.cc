#include "common/error.h"

namespace argent {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kDataLoss: return "DATA_LOSS";
    case ErrorCode::kInternal: return "INTERNAL";
    case ErrorCode::kIo: return "IO_ERROR";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
  }
  return "UNKNOWN";
}

namespace detail {

void throw_error(ErrorCode code, const char* file, int line, const std::string& what) {
  // Internal errors carry file:line for the bug report; input errors are for users and read
  // better without it, but keep it available at the end.
  if (code == ErrorCode::kInternal) {
    throw Error(code, what + " (" + file + ":" + std::to_string(line) + ")");
  }
  throw Error(code, what);
}

}  // namespace detail
}  // namespace argent
