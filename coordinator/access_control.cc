#include "coordinator/access_control.h"

#include <cstring>
#include <sstream>

#include "common/error.h"

namespace argent {
namespace {

constexpr size_t kZ85KeyChars = 40;  // a 32-byte CURVE key in Z85

bool is_z85_key(const std::string& key) {
  // The Z85 alphabet (ZeroMQ RFC 32).
  static const char* kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  if (key.size() != kZ85KeyChars) return false;
  for (char c : key)
    if (c == '\0' || std::strchr(kAlphabet, c) == nullptr) return false;
  return true;
}

}  // namespace

const char* role_name(ClientRole role) {
  switch (role) {
    case ClientRole::kQuery: return "query";
    case ClientRole::kAdmin: return "admin";
    case ClientRole::kNone: break;
  }
  return "none";
}

ClientRole required_role(const v1::Request& request) {
  switch (request.body_case()) {
    case v1::Request::kUpsert:
    case v1::Request::kDelete:
    case v1::Request::kAdmin: return ClientRole::kAdmin;
    case v1::Request::kSearch:
    case v1::Request::kStats:
    case v1::Request::kHealth:
    case v1::Request::BODY_NOT_SET: break;
  }
  return ClientRole::kQuery;
}

bool role_allows(ClientRole held, ClientRole needed) {
  if (held == ClientRole::kAdmin) return true;
  return held == ClientRole::kQuery && needed == ClientRole::kQuery;
}

std::string user_id_for(ClientRole role, const std::string& public_key_z85) {
  return std::string(role_name(role)) + ":" + public_key_z85;
}

ClientRole role_of_user_id(const std::string& user_id) {
  const std::string role = user_id.substr(0, user_id.find(':'));
  if (role == "admin") return ClientRole::kAdmin;
  if (role == "query") return ClientRole::kQuery;
  return ClientRole::kNone;
}

std::string strip_comment(const std::string& line) {
  for (size_t i = 0; i < line.size(); ++i)
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t'))
      return line.substr(0, i);
  return line;
}

AllowList parse_allow_list(const std::string& text, const std::string& origin) {
  AllowList out;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::istringstream words(strip_comment(line));
    std::string key, role, extra;
    if (!(words >> key)) continue;  // blank or comment-only
    const std::string where = origin + ":" + std::to_string(number);
    ARGENT_CHECK(words >> role, where, ": expected '<public key> <query|admin>', found only '",
                 key, "'");
    ARGENT_CHECK(!(words >> extra), where, ": unexpected '", extra,
                 "' after the role; expected '<public key> <query|admin>'");
    ARGENT_CHECK(is_z85_key(key), where, ": '", key,
                 "' is not a CURVE public key (40 Z85 characters, as `argent admin keygen` "
                 "writes)");
    const ClientRole r = role_of_user_id(role);
    ARGENT_CHECK(r != ClientRole::kNone && role.find(':') == std::string::npos, where,
                 ": unknown role '", role, "'; expected query or admin");
    ARGENT_CHECK(out.emplace(key, r).second, where, ": key ", key, " is listed twice");
  }
  return out;
}

}  // namespace argent
