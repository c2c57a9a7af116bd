#include "coordinator/fault_injection.h"

#include <cstdlib>

#include "common/error.h"
#include "common/log.h"

namespace argent {
namespace {

InjectedFaults parse(const char* spec) {
  InjectedFaults f;
  if (spec == nullptr || *spec == '\0') return f;
#if defined(ARGENT_FAULT_INJECTION)
  const std::string s(spec);
  const std::string prefix = "wrong_k:";
  ARGENT_CHECK(s.rfind(prefix, 0) == 0 && s.size() > prefix.size(), "ARGENT_FAULT_INJECT = '", s,
               "': expected wrong_k:RANK");
  char* end = nullptr;
  const long rank = std::strtol(s.c_str() + prefix.size(), &end, 10);
  ARGENT_CHECK(*end == '\0' && rank >= 0, "ARGENT_FAULT_INJECT = '", s, "': bad rank");
  f.wrong_k_rank = int(rank);
  ARGENT_LOG(kWarn, "fault injection: ", s);
#else
  ARGENT_LOG(kWarn, "ARGENT_FAULT_INJECT = '", spec,
             "' ignored: this build has no fault injection (-DARGENT_FAULT_INJECTION=ON)");
#endif
  return f;
}

}  // namespace

const InjectedFaults& injected_faults() {
  static const InjectedFaults faults = parse(std::getenv("ARGENT_FAULT_INJECT"));
  return faults;
}

}  // namespace argent
