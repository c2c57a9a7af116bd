// Faults that a test build injects into a serving rank, so tests/fault/ can show how the
// cluster reacts to a rank that misbehaves in ways a signal cannot produce.
//
// Read once from the environment variable ARGENT_FAULT_INJECT, and only in builds configured
// with -DARGENT_FAULT_INJECTION=ON (the default when ARGENT_BUILD_TESTS is ON); other builds
// ignore the variable and log a warning when it is set. Faults:
//
//   wrong_k:R   rank R answers every search step with a block whose header claims k + 1
//               (a rank that misread the step); the coordinator's check must catch it.
#pragma once

#include <string>

namespace argent {

struct InjectedFaults {
  int wrong_k_rank = -1;  // -1: none
};

// The faults for this process; throws Error(kInvalidArgument) for a malformed variable.
const InjectedFaults& injected_faults();

}  // namespace argent
