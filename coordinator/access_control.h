// Who may do what at the gateway. With gateway.auth on, each connection is a CURVE client whose
// public key is in the allow-list file with one of two roles; the ZAP handler (zap_handler.h)
// admits it and sets its ZeroMQ User-Id to "<role>:<public key>", which the gateway reads from
// every message it receives and compares with the role the request needs. Pure functions: no
// sockets here, so the parser and the role table are unit-tested and fuzzed directly.
#pragma once

#include <map>
#include <string>

#include "argent/v1/service.pb.h"

namespace argent {

enum class ClientRole { kNone, kQuery, kAdmin };

const char* role_name(ClientRole role);

// The role a request needs: Search, Stats and Health need kQuery; Upsert, Delete and every
// Admin action need kAdmin. A request with no body needs kQuery (it is answered
// INVALID_ARGUMENT, which tells nothing to a caller allowed to query).
ClientRole required_role(const v1::Request& request);

// Whether `held` may make a request needing `needed` (admin may do everything query may).
bool role_allows(ClientRole held, ClientRole needed);

// The User-Id the ZAP handler gives a client, and the role read back from it (kNone for
// anything else, e.g. the empty User-Id of a connection that was not authenticated).
std::string user_id_for(ClientRole role, const std::string& public_key_z85);
ClientRole role_of_user_id(const std::string& user_id);

// An allow-list file: Z85 public key (40 characters) -> role.
//   # comment
//   rq9Dr+xW8pN%...40 chars...  query
//   Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID admin
// Blank lines and comments are ignored: '#' starts a comment at the start of a line or after a
// space or tab (Z85 keys contain '#' themselves; `argent admin keygen` never writes a public
// key that starts with one). Throws Error(kInvalidArgument) naming `origin` and
// the line for a malformed line, a key that is not 40 Z85 characters, an unknown role or a key
// listed twice.
using AllowList = std::map<std::string, ClientRole>;

// `line` without its comment, by the rule above (shared with the key files' reader).
std::string strip_comment(const std::string& line);
AllowList parse_allow_list(const std::string& text, const std::string& origin);

}  // namespace argent
