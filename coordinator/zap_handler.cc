#include "coordinator/zap_handler.h"

#include <sys/stat.h>

#include <chrono>
#include <future>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"

namespace argent {
namespace {

std::atomic<bool> g_reload_requested{false};

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = read_whole_file(path);
  return std::string(bytes.begin(), bytes.end());
}

struct timespec modification_time(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return st.st_mtim;
}

std::string z85_of(const zmq::message_t& key) {
  if (key.size() != 32) return "(" + std::to_string(key.size()) + "-byte key)";
  char text[41];
  zmq_z85_encode(text, static_cast<const uint8_t*>(key.data()), 32);
  return text;
}

}  // namespace

void request_allow_list_reload() { g_reload_requested.store(true); }

ZapHandler::ZapHandler(zmq::context_t& context, const GatewayConfig& config,
                       RejectionLog& rejections)
    : context_(context), config_(config), rejections_(rejections) {
  try {
    mtime_ = modification_time(config_.allow_list);
    allowed_ = parse_allow_list(read_text(config_.allow_list), config_.allow_list);
  } catch (const Error& e) {
    ARGENT_CHECK(false, "gateway.allow_list: ", e.what());
  }
  ARGENT_LOG(kInfo, "gateway: CURVE authentication on, ", allowed_.size(), " keys allowed (",
             config_.allow_list, ")");
}

ZapHandler::~ZapHandler() { stop(); }

void ZapHandler::start() {
  std::promise<std::string> bound;
  std::future<std::string> result = bound.get_future();
  thread_ = std::thread([this, &bound] {
    zmq::socket_t socket(context_, zmq::socket_type::rep);
    try {
      socket.set(zmq::sockopt::linger, 0);
      socket.bind(kZapEndpoint);
    } catch (const zmq::error_t& e) {
      bound.set_value(std::string("cannot bind ") + kZapEndpoint + ": " + e.what());
      return;
    }
    bound.set_value("");
    run(socket);
  });
  const std::string problem = result.get();
  if (!problem.empty()) {
    thread_.join();
    ARGENT_THROW(ErrorCode::kUnavailable, problem);
  }
}

void ZapHandler::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::run(zmq::socket_t& socket) {
  std::vector<zmq::pollitem_t> items = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
  const auto check_every = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(config_.allow_list_check_s));
  auto next_check = std::chrono::steady_clock::now() + check_every;
  while (!stop_) {
    try {
      zmq::poll(items, std::chrono::milliseconds(50));
      if (items[0].revents & ZMQ_POLLIN) answer(socket);
      const bool forced = g_reload_requested.exchange(false);
      if (forced || std::chrono::steady_clock::now() >= next_check) {
        reload_if_changed(forced);
        next_check = std::chrono::steady_clock::now() + check_every;
      }
    } catch (const std::exception& e) {
      ARGENT_LOG(kError, "gateway: ZAP handler: ", e.what());
    }
  }
}

// One ZAP request: version, request id, domain, address, routing id, mechanism, credentials.
void ZapHandler::answer(zmq::socket_t& socket) {
  std::vector<zmq::message_t> frames;
  for (;;) {
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::none)) return;
    const bool more = frame.more();
    frames.push_back(std::move(frame));
    if (!more) break;
  }
  std::string status = "400", text = "malformed ZAP request", user_id;
  if (frames.size() >= 6 && frames[0].to_string_view() == "1.0") {
    const std::string address = frames[3].to_string();
    const std::string mechanism = frames[5].to_string();
    if (mechanism != "CURVE" || frames.size() != 7) {
      text = "mechanism " + mechanism + " is not allowed";
      rejections_.refuse("a " + mechanism + " handshake from " + address +
                         " (gateway.auth needs CURVE)");
    } else {
      const std::string key = z85_of(frames[6]);
      auto it = allowed_.find(key);
      if (it == allowed_.end()) {
        text = "public key not allowed";
        rejections_.refuse("unknown CURVE key " + key + " from " + address +
                           " (not in " + config_.allow_list + ")");
      } else {
        status = "200";
        text = "OK";
        user_id = user_id_for(it->second, key);
        ARGENT_LOG(kDebug, "gateway: admitted ", role_name(it->second), " key ", key, " from ",
                   address);
      }
    }
  }
  if (status != "200") refused_.fetch_add(1);
  const std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
  socket.send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
  socket.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
  socket.send(zmq::buffer(status), zmq::send_flags::sndmore);
  socket.send(zmq::buffer(text), zmq::send_flags::sndmore);
  socket.send(zmq::buffer(user_id), zmq::send_flags::sndmore);
  socket.send(zmq::message_t(), zmq::send_flags::none);  // no metadata
}

void ZapHandler::reload_if_changed(bool forced) {
  const struct timespec now = modification_time(config_.allow_list);
  if (!forced && now.tv_sec == mtime_.tv_sec && now.tv_nsec == mtime_.tv_nsec) return;
  mtime_ = now;
  try {
    AllowList next = parse_allow_list(read_text(config_.allow_list), config_.allow_list);
    allowed_ = std::move(next);
    reloads_.fetch_add(1);
    ARGENT_LOG(kInfo, "gateway: reloaded ", config_.allow_list, ": ", allowed_.size(),
               " keys allowed");
  } catch (const Error& e) {
    ARGENT_LOG(kError, "gateway: allow-list not reloaded, the previous one stays in force: ",
               e.what());
  }
}

}  // namespace argent
