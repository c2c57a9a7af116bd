// argent admin stats: the server's Stats message as JSON (every field, proto names), for
// scripts that want all of it; `argent admin status` is the summary for people.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/cmd_admin.h"

namespace argent {

CommandFn add_admin_stats(CLI::App& admin) {
  auto o = std::make_shared<AdminOptions>();
  CLI::App* c = admin.add_subcommand(
      "stats", "Print the server's Stats (latency, update rates, freshness) as JSON");
  o->add_to(c);  // --json is accepted; the output is JSON either way
  return [o] {
    Client client(o->endpoint, o->keys.load());
    v1::Request request;
    request.mutable_stats();
    const v1::Response r = client.call(request, o->timeout());
    const v1::Status& status = response_status(r);
    ARGENT_CHECK(status.code() == v1::OK, "admin stats: ", v1::StatusCode_Name(status.code()),
                 ": ", status.message());
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(r.stats(), &out, options);
    std::printf("%s\n", out.c_str());
    return 0;
  };
}

}  // namespace argent
