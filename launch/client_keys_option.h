// --key / --server-key, shared by the commands that talk to a gateway (query, upsert, delete,
// admin): the client's CURVE key pair and the server's public key, both written by
// `argent admin keygen`. Needed with a gateway that runs with gateway.auth; absent, the client
// connects with NULL security (no encryption), which such a gateway refuses.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "coordinator/curve_keys.h"

namespace argent {

struct ClientKeyOption {
  std::string key, server_key;
  void add_to(CLI::App* app) {
    app->add_option("--key", key,
                    "This client's CURVE key pair file (NAME.key from `argent admin keygen`)")
        ->check(CLI::ExistingFile);
    app->add_option("--server-key", server_key,
                    "The gateway's CURVE public key file (its NAME.pub or NAME.key)")
        ->check(CLI::ExistingFile);
  }
  ClientSecurity load() const { return load_client_security(key, server_key); }
};

}  // namespace argent
