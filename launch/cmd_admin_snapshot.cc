// argent admin snapshot: write a consistent snapshot of every partition and truncate the
// write-ahead log (docs/architecture.md, "Updates").
#include <memory>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/cmd_admin.h"

namespace argent {

CommandFn add_admin_snapshot(CLI::App& admin) {
  auto o = std::make_shared<AdminOptions>();
  CLI::App* c = admin.add_subcommand(
      "snapshot", "Write a snapshot of every partition and truncate the write-ahead log");
  o->add_to(c);
  return [o] {
    Client client(o->endpoint, o->keys.load());
    v1::Request request;
    request.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
    const v1::Response r = client.call(request, o->timeout());
    const v1::Status& status = response_status(r);
    ARGENT_CHECK(status.code() == v1::OK, "admin snapshot: ", v1::StatusCode_Name(status.code()),
                 ": ", status.message());
    Report report;
    report.field("sequence", r.admin().sequence());
    report.field("items", r.admin().items());
    report.field("seconds", r.admin().seconds());
    report.field("path", r.admin().path());
    report.print(o->json);
    return 0;
  };
}

}  // namespace argent
