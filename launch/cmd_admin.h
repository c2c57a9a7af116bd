// `argent admin <action>`: operator actions on a running server, one file each
// (launch/cmd_admin_<action>.cc). Every action that talks to a gateway takes --endpoint,
// --timeout-ms, --json, --key and --server-key (AdminOptions) and prints a Report (launch/report.h): a table for people, JSON for scripts.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include "argent/v1/service.pb.h"
#include "launch/client_keys_option.h"
#include "launch/commands.h"
#include "launch/report.h"

namespace argent {

struct AdminOptions {
  std::string endpoint = "tcp://127.0.0.1:5555";
  int64_t timeout_ms = 600000;
  bool json = false;
  ClientKeyOption keys;  // --key / --server-key for a gateway with gateway.auth
  void add_to(CLI::App* app);
  std::chrono::milliseconds timeout() const { return std::chrono::milliseconds(timeout_ms); }
};

// The status of a reply (its body's status, or the envelope error).
const v1::Status& response_status(const v1::Response& r);

// Each registers `argent admin <name>` on `admin` and returns what runs it.
CommandFn add_admin_status(CLI::App& admin);
CommandFn add_admin_snapshot(CLI::App& admin);
CommandFn add_admin_stats(CLI::App& admin);
CommandFn add_admin_keygen(CLI::App& admin);
CommandFn add_admin_rebalance(CLI::App& admin);

}  // namespace argent
