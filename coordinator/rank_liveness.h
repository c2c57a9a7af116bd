// What the coordinator can tell about the other ranks when a step fails: each rank's host and
// process id, gathered at start, and — for ranks on the coordinator's host — whether that
// process has exited or is stopped (/proc/<pid>/stat). Used to name the rank in the UNAVAILABLE
// replies; ranks on other hosts are reported as not checkable from here (their own watchdogs
// log their side).
#pragma once

#include <string>
#include <vector>

#include "collectives/communicator.h"

namespace argent {

class RankLiveness {
 public:
  // Every rank must call it (one all-gather over `comm`).
  static RankLiveness gather(Communicator& comm);

  // The ranks that have exited or are stopped, e.g. "rank 2 (pid 4711) has exited"; "" when
  // none of the ranks this host can see has. Safe from any thread.
  std::string lost_ranks() const;
  // Only the ranks that have exited (a stopped rank may still resume within its deadline).
  std::string exited_ranks() const;
  // lost_ranks(), or when empty a sentence saying what could not be checked.
  std::string diagnose() const;

 private:
  struct Entry {
    int pid = 0;
    std::string host;
  };
  std::string describe(bool stopped_too) const;

  std::vector<Entry> ranks_;
  int self_ = 0;
};

}  // namespace argent
