// The MPI backend of Communicator, run under `mpirun -np 3`: every collective moves random data
// and is compared with what each rank can compute on its own. Run with --timeout-probe it is
// instead the child of TimeoutAbortsTheJob (tests/collectives/collective_timeout_test.cc).
#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>
#include <random>
#include <thread>

#include "collectives/communicator.h"
#include "collectives/mpi_communicator.h"

namespace argent {
namespace {

MpiCommunicator* g_comm = nullptr;

// Bytes that rank `rank` contributes in test `salt`: deterministic, so every rank can check them.
std::vector<uint8_t> rank_bytes(int rank, size_t n, uint64_t salt) {
  std::mt19937_64 rng(salt * 1000003 + uint64_t(rank));
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = uint8_t(rng());
  return v;
}

TEST(MpiCommunicator, BroadcastFromEveryRoot) {
  MpiCommunicator& c = *g_comm;
  for (int root = 0; root < c.size(); ++root) {
    const std::vector<uint8_t> expected = rank_bytes(root, 10007, 1);
    std::vector<uint8_t> buf = c.rank() == root ? expected : std::vector<uint8_t>(10007, 0);
    c.broadcast(buf.data(), buf.size(), root);
    EXPECT_EQ(buf, expected) << "root " << root;
  }
}

TEST(MpiCommunicator, AllGatherFixedAndVariable) {
  MpiCommunicator& c = *g_comm;
  const std::vector<uint8_t> mine = rank_bytes(c.rank(), 4099, 2);
  std::vector<uint8_t> all(mine.size() * size_t(c.size()));
  c.all_gather(mine.data(), all.data(), mine.size());
  for (int r = 0; r < c.size(); ++r) {
    const std::vector<uint8_t> want = rank_bytes(r, 4099, 2);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), all.begin() + r * 4099)) << "rank " << r;
  }

  std::vector<size_t> counts;
  for (int r = 0; r < c.size(); ++r) counts.push_back(size_t(r * 977 + (r == 1 ? 0 : 13)));
  const std::vector<uint8_t> mine_v = rank_bytes(c.rank(), counts[size_t(c.rank())], 3);
  std::vector<uint8_t> all_v(std::accumulate(counts.begin(), counts.end(), size_t(0)));
  c.all_gather_v(mine_v.data(), all_v.data(), counts);
  size_t offset = 0;
  for (int r = 0; r < c.size(); ++r) {
    const std::vector<uint8_t> want = rank_bytes(r, counts[size_t(r)], 3);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), all_v.begin() + long(offset))) << "rank " << r;
    offset += counts[size_t(r)];
  }
}

TEST(MpiCommunicator, TensorFormsKeepShapeAndOrder) {
  MpiCommunicator& c = *g_comm;
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}) + float(100 * c.rank());
  const at::Tensor g = all_gather_tensor(c, t);
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{c.size(), 2, 3}));
  for (int r = 0; r < c.size(); ++r)
    EXPECT_TRUE(at::equal(g[r], at::arange(6, at::kFloat).reshape({2, 3}) + float(100 * r)));

  // Ranks contribute different numbers of rows.
  at::Tensor rows = at::full({c.rank() + 1, 4}, int64_t(c.rank()), at::kLong);
  std::vector<int64_t> per_rank;
  const at::Tensor cat = all_gather_rows(c, rows, &per_rank);
  ASSERT_EQ(per_rank.size(), size_t(c.size()));
  int64_t row = 0;
  for (int r = 0; r < c.size(); ++r) {
    EXPECT_EQ(per_rank[size_t(r)], r + 1);
    for (int64_t i = 0; i <= r; ++i, ++row)
      EXPECT_TRUE(at::equal(cat[row], at::full({4}, int64_t(r), at::kLong)));
  }

  at::Tensor b = c.rank() == 0 ? at::arange(10, at::kInt) : at::zeros({10}, at::kInt);
  broadcast_tensor(c, b, 0);
  EXPECT_TRUE(at::equal(b, at::arange(10, at::kInt)));
}

TEST(MpiCommunicator, SendRecvRingAndBarrier) {
  MpiCommunicator& c = *g_comm;
  const int next = (c.rank() + 1) % c.size(), prev = (c.rank() + c.size() - 1) % c.size();
  const std::vector<uint8_t> mine = rank_bytes(c.rank(), 3001, 4);
  std::vector<uint8_t> got(3001);
  // Even ranks send first, odd ranks receive first: no deadlock with blocking semantics.
  if (c.rank() % 2 == 0) {
    c.send(mine.data(), mine.size(), next);
    c.recv(got.data(), got.size(), prev);
  } else {
    c.recv(got.data(), got.size(), prev);
    c.send(mine.data(), mine.size(), next);
  }
  EXPECT_EQ(got, rank_bytes(prev, 3001, 4));
  c.barrier();
}

TEST(MpiCommunicator, ReportsNodeLocalRank) {
  MpiCommunicator& c = *g_comm;
  // All ranks of this test run on one node.
  EXPECT_EQ(c.local_rank(), c.rank());
  EXPECT_EQ(c.backend(), "mpi");
  EXPECT_EQ(c.memory(), MemoryKind::kHost);
}

// Rank 1 never joins the broadcast: rank 0's broadcast must throw within its 500 ms timeout.
int run_timeout_probe() {
  MpiCommunicator comm(MPI_COMM_WORLD, CollectiveTimeout(500));
  if (comm.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
  }
  uint64_t word = 42;
  try {
    comm.broadcast(&word, sizeof(word), 1);
  } catch (const std::exception& e) {
    // As argent serve does: a timed-out collective ends the whole job.
    std::fprintf(stderr, "rank %d: %s\n", comm.rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 70);
  }
  return 0;
}

}  // namespace
}  // namespace argent

int main(int argc, char** argv) {
  argent::MpiSession mpi(&argc, &argv);
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--timeout-probe") return argent::run_timeout_probe();
  ::testing::InitGoogleTest(&argc, argv);
  argent::MpiCommunicator comm(MPI_COMM_WORLD);
  argent::g_comm = &comm;
  int rc = RUN_ALL_TESTS();
  // A failure on any rank fails the job.
  int worst = rc;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}
