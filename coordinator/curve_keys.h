// CURVE key files (docs/reliability.md, "Authentication"). `argent admin keygen --out NAME`
// writes NAME.key, the key pair (mode 0600), and NAME.pub, the public key alone:
//
//   public-key = <40 Z85 characters>
//   secret-key = <40 Z85 characters>      (NAME.key only)
//
// The server reads its pair from gateway.server_key; a client reads its own pair and the
// server's public key. The Python client (python/argent_client.py) reads the same format.
#pragma once

#include <string>

namespace argent {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// A fresh pair from libzmq (zmq_curve_keypair). Throws Error(kInternal) without CURVE support.
CurveKeyPair generate_curve_key_pair();

// Writes PREFIX.key (the pair, mode 0600, created exclusively: an existing key is never
// overwritten) and PREFIX.pub. Throws Error(kIo) / Error(kInvalidArgument).
void write_curve_key_files(const std::string& prefix, const CurveKeyPair& pair);

// Reads a key pair file; throws Error(kInvalidArgument) naming the file and line for a missing
// or malformed key, or a secret key that does not match the public one.
CurveKeyPair read_curve_key_pair(const std::string& path);

// Reads the public key of a .pub or .key file.
std::string read_curve_public_key(const std::string& path);

// Security settings of a client connection: empty keys mean NULL security (no encryption).
struct ClientSecurity {
  CurveKeyPair client;
  std::string server_public_key;
  bool enabled() const { return !server_public_key.empty(); }
};

// From a client key pair file and the server's public key file (either may name a .key file);
// both paths empty gives NULL security, exactly one is an error.
ClientSecurity load_client_security(const std::string& key_path,
                                    const std::string& server_key_path);

}  // namespace argent
