// argent admin: operator actions on a running server.
//   snapshot  write a consistent snapshot of every partition and truncate the write-ahead log
//   stats     print the server's Stats (search latency, update rates, freshness) as JSON
//   keygen    write a CURVE key pair (--out NAME: NAME.key and NAME.pub; no server involved)
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>
#include <string>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/client_keys_option.h"
#include "launch/commands.h"

namespace argent {
namespace {

struct AdminArgs {
  std::string action, endpoint = "tcp://127.0.0.1:5555";
  int64_t timeout_ms = 600000;
  std::string out;  // keygen
  ClientKeyOption keys;
};

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

int run_admin(const AdminArgs& a) {
  if (a.action == "keygen") return run_keygen(a.out);
  Client client(a.endpoint, a.keys.load());
  v1::Request request;
  if (a.action == "snapshot") {
    request.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  } else {
    request.mutable_stats();
  }
  const v1::Response r = client.call(request, std::chrono::milliseconds(a.timeout_ms));
  const v1::Status& status = r.has_admin() ? r.admin().status()
                             : r.has_stats() ? r.stats().status()
                                             : r.error();
  ARGENT_CHECK(status.code() == v1::OK, "admin ", a.action, ": ",
               v1::StatusCode_Name(status.code()), ": ", status.message());
  std::printf("%s\n", r.has_admin() ? to_json(r.admin()).c_str() : to_json(r.stats()).c_str());
  return 0;
}

}  // namespace

CommandFn add_admin_command(CLI::App& app) {
  auto a = std::make_shared<AdminArgs>();
  CLI::App* c = app.add_subcommand("admin", "Operator actions on a running server");
  c->add_option("action", a->action,
                "snapshot: write a snapshot and truncate the log; stats: print Stats as JSON; keygen: "
                "write a CURVE key pair")
      ->required()
      ->check(CLI::IsMember({"snapshot", "stats", "keygen"}));
  c->add_option("--endpoint", a->endpoint, "Gateway endpoint")->capture_default_str();
  a->keys.add_to(c);
  c->add_option("--out", a->out, "keygen: write OUT.key (the pair, mode 0600) and OUT.pub");
  c->add_option("--timeout-ms", a->timeout_ms, "Give up after this long")->capture_default_str();
  return [a] { return run_admin(*a); };
}

}  // namespace argent
