// The metrics endpoint's HTTP server (coordinator/metrics_http.h) under clients that connect and
// send nothing, or trickle their request a byte at a time: a scrape running beside them is
// answered at once, and they are cut off at their deadline. Before, the server took one client
// at a time with a 2 s timeout per recv, so 5 idle connections made a scrape take 10 s and a
// client sending a byte every second held the endpoint for ever.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/metrics_http.h"

namespace argent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Generous against a loaded 2-core machine, and still well under what one stalled client
// cost before (2 s each).
constexpr std::chrono::duration<double> kScrapeBound{3.0};
constexpr int kIdleClients = 5;

// A TCP connection to 127.0.0.1:`port` that sends nothing until told; closed on destruction.
class RawClient {
 public:
  explicit RawClient(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    timeval timeout{10, 0};  // a test that hangs fails instead
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  bool send(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size());
  }
  // Everything until the server closes the connection (or 10 s pass).
  std::string read_all() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) out.append(buf, size_t(n));
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

class MetricsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter().Name("argent_test_scrapes_total").Help("test").Register(*registry_)
        .Add({})
        .Increment(7);
    server_ = std::make_unique<MetricsHttpServer>("127.0.0.1", "0", registry_);
  }

  // GET /metrics on a fresh connection: the response, and how long it took.
  std::pair<std::string, double> timed_scrape() {
    const auto start = Clock::now();
    RawClient client(server_->port());
    EXPECT_TRUE(client.connected());
    client.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    std::string response = client.read_all();
    return {response, std::chrono::duration<double>(Clock::now() - start).count()};
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttp, AScrapeIsAnsweredBesideIdleConnections) {
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < kIdleClients; ++i) {
    idle.push_back(std::make_unique<RawClient>(server_->port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  std::this_thread::sleep_for(milliseconds(100));  // they are accepted before the scrape
  const auto [response, seconds] = timed_scrape();
  std::printf("scrape beside %d idle connections: %.3f s\n", kIdleClients, seconds);
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("argent_test_scrapes_total 7"), std::string::npos) << response;
  EXPECT_LT(seconds, kScrapeBound.count());
  // The idle ones are closed at their request deadline, unanswered.
  const auto start = Clock::now();
  EXPECT_EQ(idle[0]->read_all(), "");
  const double closed_after = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_LT(closed_after, kScrapeBound.count());
}

TEST_F(MetricsHttp, AClientTricklingItsRequestIsCutOffAndDelaysNobody) {
  RawClient slow(server_->port());
  ASSERT_TRUE(slow.connected());
  std::atomic<bool> stop{false};
  std::atomic<int> trickled{0};
  // One byte every 200 ms, well inside the old per-recv timeout, never a whole request.
  std::thread trickle([&] {
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ";
    for (size_t i = 0; !stop && i < 1000; ++i) {
      if (!slow.send(std::string(1, i < request.size() ? request[i] : 'x'))) break;
      ++trickled;
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  const auto [response, seconds] = timed_scrape();
  std::printf("scrape beside a trickling client: %.3f s\n", seconds);
  EXPECT_NE(response.find("argent_test_scrapes_total 7"), std::string::npos) << response;
  EXPECT_LT(seconds, kScrapeBound.count());
  // The trickling client gets no answer: its connection is closed at its deadline.
  const auto start = Clock::now();
  EXPECT_EQ(slow.read_all(), "");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), kScrapeBound.count());
  stop = true;
  trickle.join();
  EXPECT_GT(trickled.load(), 0);
}

TEST_F(MetricsHttp, ManyScrapesAtOnceAreAllAnswered) {
  std::vector<std::thread> scrapers;
  std::atomic<int> answered{0};
  for (int i = 0; i < 20; ++i) {
    scrapers.emplace_back([&] {
      if (timed_scrape().first.find("argent_test_scrapes_total 7") != std::string::npos)
        ++answered;
    });
  }
  for (std::thread& t : scrapers) t.join();
  EXPECT_EQ(answered.load(), 20);
  // Anything but /metrics (or /) is a 404 naming the path to use.
  RawClient client(server_->port());
  client.send("GET /other HTTP/1.1\r\n\r\n");
  const std::string response = client.read_all();
  EXPECT_EQ(response.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("/metrics"), std::string::npos);
}

// CPU seconds this process has used (every thread).
double process_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Out of file descriptors, accept() fails with EMFILE and leaves the client in the backlog, so
// the listening socket stays readable. The server used to poll it again at once: one core spun
// at 100 % until a descriptor was freed. Now it backs off, and serves the client once it can.
TEST_F(MetricsHttp, OutOfDescriptorsTheServerWaitsInsteadOfSpinningAndServesLater) {
  // Lower the limit to just above what is open, take every descriptor left but one, and
  // connect with that one: the server cannot accept (connect() itself needs no accept()).
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int highest = ::dup(0);
  ASSERT_GE(highest, 0);
  ::close(highest);
  rlimit low = old;
  low.rlim_cur = rlim_t(highest + 8);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
  const int exhausted = errno;
  ASSERT_FALSE(fillers.empty());
  ::close(fillers.back());
  fillers.pop_back();
  RawClient pending(server_->port());
  ASSERT_TRUE(pending.connected());
  ASSERT_TRUE(pending.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));

  const double cpu_before = process_cpu_seconds();
  std::this_thread::sleep_for(milliseconds(600));
  const double cpu_used = process_cpu_seconds() - cpu_before;

  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_EQ(exhausted, EMFILE);
  std::printf("CPU used in 0.6 s without descriptors: %.3f s\n", cpu_used);
  EXPECT_LT(cpu_used, 0.2);  // spinning took ~0.6 s of one core
  const std::string response = pending.read_all();
  EXPECT_NE(response.find("argent_test_scrapes_total 7"), std::string::npos) << response;
}

}  // namespace
}  // namespace argent
