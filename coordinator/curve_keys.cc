#include "coordinator/curve_keys.h"

#include <fcntl.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "coordinator/access_control.h"

namespace argent {
namespace {

constexpr size_t kZ85Chars = 40;

// "name = value" lines; '#' comments and blank lines ignored.
std::map<std::string, std::string> read_key_lines(const std::string& path) {
  std::ifstream in(path);
  ARGENT_CHECK(in.good(), "cannot open key file ", path, ": ", std::strerror(errno));
  std::map<std::string, std::string> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = strip_comment(line);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const size_t eq = line.find('=');
    std::string name, value;
    std::istringstream(line.substr(0, eq == std::string::npos ? 0 : eq)) >> name;
    if (eq != std::string::npos) std::istringstream(line.substr(eq + 1)) >> value;
    ARGENT_CHECK(eq != std::string::npos && (name == "public-key" || name == "secret-key"),
                 path, ":", number, ": expected 'public-key = <key>' or 'secret-key = <key>'");
    uint8_t raw[32];
    ARGENT_CHECK(value.size() == kZ85Chars && zmq_z85_decode(raw, value.c_str()) != nullptr,
                 path, ":", number, ": ", name, " is not 40 Z85 characters");
    ARGENT_CHECK(out.emplace(name, value).second, path, ":", number, ": ", name,
                 " given twice");
  }
  ARGENT_CHECK(out.count("public-key") == 1, path, ": no 'public-key = ...' line");
  return out;
}

}  // namespace

CurveKeyPair generate_curve_key_pair() {
  char public_key[kZ85Chars + 1], secret_key[kZ85Chars + 1];
  // A public key starting with '#' would read as a comment at the start of an allow-list line.
  do {
    if (zmq_curve_keypair(public_key, secret_key) != 0)
      ARGENT_THROW(ErrorCode::kInternal, "zmq_curve_keypair: ", zmq_strerror(zmq_errno()),
                   " (libzmq built without CURVE?)");
  } while (public_key[0] == '#');
  return CurveKeyPair{public_key, secret_key};
}

void write_curve_key_files(const std::string& prefix, const CurveKeyPair& pair) {
  const std::string key_path = prefix + ".key", pub_path = prefix + ".pub";
  // "keygen --out keys/server" on a fresh checkout: the folder is made, not a reason to fail.
  const std::filesystem::path folder = std::filesystem::path(key_path).parent_path();
  std::error_code made;
  if (!folder.empty()) std::filesystem::create_directories(folder, made);
  ARGENT_CHECK(!made, "cannot create the folder ", folder.string(), ": ", made.message());
  const int fd = ::open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ARGENT_CHECK(fd >= 0 || errno != EEXIST, key_path,
               " already exists (an existing key is never overwritten)");
  ARGENT_SYSCALL_CHECK(fd >= 0, "cannot create ", key_path);
  const std::string text = "# Argent CURVE key pair: keep secret\npublic-key = " +
                           pair.public_key + "\nsecret-key = " + pair.secret_key + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  ARGENT_SYSCALL_CHECK(written && synced, "cannot write ", key_path);
  std::ofstream pub(pub_path, std::ios::trunc);
  pub << "# Argent CURVE public key\npublic-key = " << pair.public_key << "\n";
  pub.close();
  ARGENT_SYSCALL_CHECK(pub.good(), "cannot write ", pub_path);
}

CurveKeyPair read_curve_key_pair(const std::string& path) {
  const std::map<std::string, std::string> keys = read_key_lines(path);
  ARGENT_CHECK(keys.count("secret-key") == 1, path,
               ": no 'secret-key = ...' line (a .pub file holds only the public key; give the "
               ".key file)");
  CurveKeyPair pair{keys.at("public-key"), keys.at("secret-key")};
  char derived[kZ85Chars + 1];
  ARGENT_CHECK(zmq_curve_public(derived, pair.secret_key.c_str()) == 0 &&
                   pair.public_key == derived,
               path, ": public-key does not belong to secret-key");
  return pair;
}

std::string read_curve_public_key(const std::string& path) {
  return read_key_lines(path).at("public-key");
}

ClientSecurity load_client_security(const std::string& key_path,
                                    const std::string& server_key_path) {
  ClientSecurity s;
  if (key_path.empty() && server_key_path.empty()) return s;
  ARGENT_CHECK(!key_path.empty() && !server_key_path.empty(),
               "CURVE needs both the client's key pair (--key) and the server's public key "
               "(--server-key)");
  s.client = read_curve_key_pair(key_path);
  s.server_public_key = read_curve_public_key(server_key_path);
  return s;
}

}  // namespace argent
