// argent admin keygen --out NAME: a CURVE key pair for the gateway or one of its clients
// (docs/reliability.md, "Authentication"). Writes NAME.key (public and secret key, mode 0600,
// never over an existing file) and NAME.pub (the public key, to hand out or put in the
// allow-list), and prints the public key.
#include <cstdio>

#include "common/error.h"
#include "coordinator/curve_keys.h"
#include "launch/commands.h"

namespace argent {

int run_keygen(const std::string& out_prefix) {
  ARGENT_CHECK(!out_prefix.empty(), "admin keygen: --out NAME is required (writes NAME.key and "
               "NAME.pub)");
  const CurveKeyPair pair = generate_curve_key_pair();
  write_curve_key_files(out_prefix, pair);
  std::printf("%s\n", pair.public_key.c_str());
  std::fprintf(stderr, "wrote %s.key (keep it secret) and %s.pub\n", out_prefix.c_str(),
               out_prefix.c_str());
  return 0;
}

}  // namespace argent
