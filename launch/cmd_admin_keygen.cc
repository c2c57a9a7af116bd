// argent admin keygen --out NAME: writes a CURVE key pair (NAME.key, mode 0600, and NAME.pub) for
// a gateway with gateway.auth or one of its clients (docs/reliability.md, "Authentication").
// No server is involved.
#include <memory>
#include <string>

#include "launch/cmd_admin.h"

namespace argent {

CommandFn add_admin_keygen(CLI::App& admin) {
  auto out = std::make_shared<std::string>();
  CLI::App* c = admin.add_subcommand("keygen", "Write a CURVE key pair: OUT.key and OUT.pub");
  c->add_option("--out", *out, "Path prefix of the files to write")->required();
  return [out] { return run_keygen(*out); };
}

}  // namespace argent
