// The version of this build: "0.1.0+<git commit at configure time>", reported by
// `argent --version` and by a server's Health and Stats replies (argent admin status).
#pragma once

namespace argent {

const char* argent_version();

}  // namespace argent
