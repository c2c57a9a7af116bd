#include "coordinator/replier.h"

#include "coordinator/metrics.h"

namespace argent {

Replier::Replier(zmq::context_t& context) : socket_(context, zmq::socket_type::push) {
  // Replies are bounded by the request queue; never block a step on the inbox.
  socket_.set(zmq::sockopt::sndhwm, 0);
  socket_.connect(kReplyInbox);
}

void Replier::send(const std::vector<std::string>& envelope, const v1::Response& response,
                   std::chrono::steady_clock::time_point arrival) {
  metrics().observe_response(response, arrival);
  for (const std::string& frame : envelope) socket_.send(zmq::buffer(frame), zmq::send_flags::sndmore);
  const std::string payload = response.SerializeAsString();
  socket_.send(zmq::buffer(payload), zmq::send_flags::none);
}

}  // namespace argent
