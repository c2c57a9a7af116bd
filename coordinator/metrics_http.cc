#include "coordinator/metrics_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace argent {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxRequestBytes = 8192;  // a longer request is answered from its first line
constexpr std::chrono::milliseconds kStopCheck{200};  // the loop wakes this often for stop_
// Out of descriptors (EMFILE/ENFILE) the pending client stays in the backlog and the listening
// socket stays readable: polling it again at once would spin a core until a descriptor frees.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

}  // namespace

struct MetricsHttpServer::Connection {
  int fd = -1;
  std::string request;   // received so far
  std::string response;  // set once the request is complete
  size_t sent = 0;
  Clock::time_point deadline;  // of its phase: receiving the request, then sending the answer
  bool done = false;           // to be closed
};

MetricsHttpServer::MetricsHttpServer(const std::string& host, const std::string& port,
                                     std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0)
    ARGENT_THROW(ErrorCode::kUnavailable, "metrics endpoint '", host, ":", port, "': ",
                 ::gai_strerror(rc));
  std::string problem = "no address";
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    // Non-blocking: the loop accepts until EAGAIN and never waits inside accept().
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      listen_fd_ = fd;
    } else {
      problem = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0)
    ARGENT_THROW(ErrorCode::kUnavailable, "cannot serve metrics on '", host, ":", port, "': ",
                 problem);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6
              ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  thread_ = std::thread([this] { run(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void MetricsHttpServer::run() {
  std::vector<Connection> open;
  std::vector<pollfd> fds;
  Clock::time_point accept_after = Clock::now();
  while (!stop_) {
    // At capacity, or backing off after running out of descriptors, the listening socket is left
    // out: new clients wait in the backlog until an open connection ends (its deadline bounds
    // that) or the back-off ends.
    const bool accepting = open.size() < kMaxMetricsConnections && Clock::now() >= accept_after;
    fds.assign(1, pollfd{listen_fd_, short(accepting ? POLLIN : 0), 0});
    Clock::time_point wake = Clock::now() + kStopCheck;
    if (!accepting) wake = std::min(wake, std::max(accept_after, Clock::now()));
    for (const Connection& c : open) {
      fds.push_back(pollfd{c.fd, short(c.response.empty() ? POLLIN : POLLOUT), 0});
      wake = std::min(wake, c.deadline);
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now());
    if (::poll(fds.data(), fds.size(), int(std::max<int64_t>(0, wait.count()))) < 0) continue;
    for (size_t i = 0; i < open.size(); ++i) {
      Connection& c = open[i];
      const short events = fds[i + 1].revents;
      try {
        if (events & (POLLERR | POLLNVAL)) {
          c.done = true;
        } else if (c.response.empty() && (events & (POLLIN | POLLHUP))) {
          read_request(c);
        } else if (!c.response.empty() && (events & (POLLOUT | POLLHUP))) {
          send_response(c);
        }
      } catch (const std::exception& e) {
        ARGENT_LOG(kWarn, "metrics endpoint: ", e.what());
        c.done = true;
      }
    }
    if ((fds[0].revents & POLLIN) && !accept_clients(open))
      accept_after = Clock::now() + kAcceptBackoff;
    const Clock::time_point now = Clock::now();
    for (Connection& c : open)
      if (c.done || now >= c.deadline) ::close(c.fd);
    open.erase(std::remove_if(open.begin(), open.end(),
                              [&](const Connection& c) { return c.done || now >= c.deadline; }),
               open.end());
  }
  for (const Connection& c : open) ::close(c.fd);
}

bool MetricsHttpServer::accept_clients(std::vector<Connection>& open) {
  while (open.size() < kMaxMetricsConnections) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
      if (!out_of_descriptors_logged_)
        ARGENT_LOG(kWarn, "metrics endpoint: cannot accept a scrape: ", std::strerror(errno),
                   "; retrying every ", kAcceptBackoff.count(), " ms");
      out_of_descriptors_logged_ = true;
      return false;
    }
    if (fd < 0) return true;  // EAGAIN: none left; anything else: that client is gone already
    out_of_descriptors_logged_ = false;
    Connection c;
    c.fd = fd;
    c.deadline = Clock::now() + kMetricsRequestDeadline;
    open.push_back(std::move(c));
  }
  return true;
}

void MetricsHttpServer::read_request(Connection& c) {
  char buf[1024];
  while (c.request.find("\r\n\r\n") == std::string::npos && c.request.size() < kMaxRequestBytes) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return;  // the rest later, within the deadline
    if (n <= 0) {
      c.done = true;  // closed, or failed, before its request was complete: nothing to answer
      return;
    }
    c.request.append(buf, size_t(n));
  }
  c.response = respond(c.request);
  c.deadline = Clock::now() + kMetricsResponseDeadline;
  send_response(c);
}

void MetricsHttpServer::send_response(Connection& c) {
  while (c.sent < c.response.size()) {
    const ssize_t n = ::send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return;  // the rest when the client reads
    if (n <= 0) break;                        // the client is gone
    c.sent += size_t(n);
  }
  c.done = true;  // all sent (Connection: close), or the client is gone
}

std::string MetricsHttpServer::respond(const std::string& request) const {
  const std::string line = request.substr(0, request.find("\r\n"));
  std::string status = "200 OK", body;
  if (line.rfind("GET /metrics ", 0) == 0 || line.rfind("GET /metrics?", 0) == 0 ||
      line.rfind("GET / ", 0) == 0) {
    body = prometheus::TextSerializer().Serialize(registry_->Collect());
  } else {
    status = "404 Not Found";
    body = "argent: the metrics are at /metrics\n";
  }
  return "HTTP/1.1 " + status +
         "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace argent
