#include "common/version.h"

namespace argent {

const char* argent_version() { return ARGENT_VERSION_STRING "+" ARGENT_GIT_COMMIT; }

}  // namespace argent
