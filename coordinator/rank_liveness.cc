#include "coordinator/rank_liveness.h"

#include <unistd.h>

#include <cstring>
#include <fstream>

namespace argent {
namespace {

struct RankId {
  int32_t pid = 0;
  char host[60] = {};
};
static_assert(sizeof(RankId) == 64, "RankId is gathered as raw bytes");

// The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...), or 0 when there is no such
// process.
char process_state(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return 0;
  return line[close + 2];
}

}  // namespace

RankLiveness RankLiveness::gather(Communicator& comm) {
  RankId mine;
  mine.pid = int32_t(::getpid());
  gethostname(mine.host, sizeof(mine.host) - 1);
  std::vector<RankId> all(size_t(comm.size()));
  comm.all_gather_host(&mine, all.data(), sizeof mine);
  RankLiveness out;
  out.self_ = comm.rank();
  for (const RankId& r : all) out.ranks_.push_back(Entry{r.pid, std::string(r.host)});
  return out;
}

std::string RankLiveness::lost_ranks() const { return describe(true); }

std::string RankLiveness::exited_ranks() const { return describe(false); }

std::string RankLiveness::describe(bool stopped_too) const {
  std::string out;
  const std::string& here = ranks_[size_t(self_)].host;
  for (size_t r = 0; r < ranks_.size(); ++r) {
    if (int(r) == self_ || ranks_[r].host != here) continue;
    const char state = process_state(ranks_[r].pid);
    std::string what;
    if (state == 0 || state == 'Z' || state == 'X') what = "has exited";
    else if (stopped_too && (state == 'T' || state == 't')) what = "is stopped";
    else continue;
    out += (out.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + " (pid " +
           std::to_string(ranks_[r].pid) + ") " + what;
  }
  return out;
}

std::string RankLiveness::diagnose() const {
  std::string lost = lost_ranks();
  if (!lost.empty()) return lost;
  std::string remote;
  const std::string& here = ranks_[size_t(self_)].host;
  for (size_t r = 0; r < ranks_.size(); ++r)
    if (ranks_[r].host != here) remote += (remote.empty() ? "" : ", ") + std::to_string(r);
  if (remote.empty()) return "no rank's process has exited or stopped";
  return "no rank on this host has exited or stopped; ranks " + remote +
         " on other hosts cannot be checked from here (see their logs)";
}

}  // namespace argent
