// A collective that cannot finish (one rank never joins) must abort the job with a message naming
// the operation, not hang it.
#include <gtest/gtest.h>

#include <csignal>

#include "serving/mpi_job.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

TEST(CollectiveTimeout, TimeoutAbortsTheJob) {
  const test::TempDir dir;  // removed with the job's log
  const std::string log = dir.file("collective-timeout.log");
  testing::MpiJob job({ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np", "2",
                       MPI_TEST_BINARY, "--timeout-probe"},
                      log);
  ASSERT_TRUE(job.started());
  // Without the timeout rank 0 would wait for the 30 s sleeper; with it the job ends in ~1 s.
  const bool exited = job.stop(0, std::chrono::seconds(20));
  EXPECT_TRUE(exited) << "the job hung: " << job.log();
  EXPECT_NE(job.log().find("did not finish within 500 ms"), std::string::npos) << job.log();
}

}  // namespace
}  // namespace argent
