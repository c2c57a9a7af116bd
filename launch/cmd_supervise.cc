// argent supervise: runs a serving job (`mpirun ... argent serve ...`) and restarts it after a
// failure, with exponential backoff (docs/reliability.md, "Cluster faults").
//
// The job runs in its own process group. The supervisor is a child subreaper
// (PR_SET_CHILD_SUBREAPER), so a rank orphaned by a dying mpirun becomes its child: after each
// run it kills and reaps every such leftover, so no process of a failed run outlives it. A run
// that exits 0 (the job was asked to stop) ends the supervisor; SIGTERM/SIGINT to the
// supervisor stop the job (SIGTERM, then SIGKILL after --stop-timeout-s) and end it too.
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "coordinator/client.h"
#include "launch/commands.h"

extern char** environ;

namespace argent {
namespace {

using Clock = std::chrono::steady_clock;

struct SuperviseArgs {
  std::vector<std::string> command;
  std::string endpoint;
  int64_t max_restarts = 0;
  int64_t backoff_ms = 500;
  int64_t max_backoff_ms = 30000;
  double stable_after_s = 60;
  double stop_timeout_s = 30;
};

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int signal) { g_stop_signal.store(signal); }

// One line on stderr, with wall-clock time: the supervisor's log is its restart history.
template <typename... Parts>
void note(const Parts&... parts) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         now.time_since_epoch()).count() % 1000);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", std::gmtime(&t));
  std::fprintf(stderr, "[%s.%03dZ] argent supervise: %s\n", stamp, ms,
               detail::concat(parts...).c_str());
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended (wait status " + std::to_string(status) + ")";
}

pid_t spawn(const std::vector<std::string>& argv, int run) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: stopped and killed as one
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // The run number, for the job's logs.
  setenv("ARGENT_SUPERVISE_RUN", std::to_string(run).c_str(), 1);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  ARGENT_CHECK(rc == 0, "supervise: cannot start '", argv[0], "': ", std::strerror(rc));
  return pid;
}

// The state letter of /proc/<pid>/stat and its parent, or state 0 when gone.
std::pair<char, pid_t> state_and_parent(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return {0, 0};
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return {state, ppid};
}

// Our children (orphans of the job, reparented to this subreaper).
std::vector<pid_t> children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      const pid_t pid = pid_t(std::atoi(e->d_name));
      if (pid > 0 && state_and_parent(pid).second == self) out.push_back(pid);
    }
    closedir(d);
  }
  return out;
}

// Kills what is left of a run: its process group and any orphan that reached us; reaps them.
// Orphans that had already exited (zombies whose parent, mpirun, ended first) are only reaped.
void clear_leftovers(pid_t group) {
  kill(-group, SIGKILL);
  int killed = 0;
  for (int round = 0; round < 50; ++round) {
    const std::vector<pid_t> left = children();
    if (left.empty()) break;
    for (pid_t p : left) {
      if (state_and_parent(p).first != 'Z') {
        kill(p, SIGKILL);
        ++killed;
      }
      waitpid(p, nullptr, 0);
    }
  }
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  if (killed > 0) note("killed ", killed, " process(es) of the last run still alive after it");
}

void remove_stale_ipc(const std::string& endpoint) {
  const std::string prefix = "ipc://";
  if (endpoint.rfind(prefix, 0) != 0) return;
  const std::string path = endpoint.substr(prefix.size());
  if (::unlink(path.c_str()) == 0) note("removed the stale gateway socket ", path);
}

// Waits for the run to end, stopping it on a stop signal; returns its wait status.
int wait_run(pid_t pid, const SuperviseArgs& a, Clock::time_point started) {
  std::unique_ptr<Client> probe;
  if (!a.endpoint.empty()) probe = std::make_unique<Client>(a.endpoint);
  bool answering = a.endpoint.empty();
  bool stopping = false;
  Clock::time_point stop_sent;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (!stopping && g_stop_signal.load() != 0) {
      note("stopping the job (signal ", g_stop_signal.load(), ")");
      kill(pid, SIGTERM);
      stopping = true;
      stop_sent = Clock::now();
    }
    if (stopping && Clock::now() - stop_sent > std::chrono::duration<double>(a.stop_timeout_s)) {
      note("the job did not stop within ", a.stop_timeout_s, " s; killing it");
      kill(-pid, SIGKILL);
    }
    if (!answering && !stopping) {
      // Health through the gateway: the time from start to a serving cluster. A failed probe
      // (a signal interrupting ZeroMQ's poll, a reply that does not parse) is only a probe:
      // the supervisor must go on watching the job.
      try {
        if (probe->wait_until_healthy(std::chrono::milliseconds(100))) {
          answering = true;
          note("cluster answering on ", a.endpoint, " ",
               std::chrono::duration<double>(Clock::now() - started).count(), " s after start");
        }
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

int run_supervise(const SuperviseArgs& a) {
  ARGENT_CHECK(!a.command.empty(), "supervise: no command (argent supervise -- mpirun ...)");
  ARGENT_CHECK(a.backoff_ms >= 0 && a.max_backoff_ms >= a.backoff_ms,
               "supervise: --backoff-ms ", a.backoff_ms, " must be in [0, --max-backoff-ms = ",
               a.max_backoff_ms, "]");
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  int failures = 0;  // consecutive
  for (int run = 1;; ++run) {
    remove_stale_ipc(a.endpoint);
    const auto started = Clock::now();
    const pid_t pid = spawn(a.command, run);
    note("run ", run, ": started pid ", pid);
    const int status = wait_run(pid, a, started);
    const double lasted = std::chrono::duration<double>(Clock::now() - started).count();
    clear_leftovers(pid);
    note("run ", run, " ", describe_status(status), " after ", lasted, " s");
    if (g_stop_signal.load() != 0) return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;  // asked to stop
    failures = lasted >= a.stable_after_s ? 1 : failures + 1;
    if (a.max_restarts > 0 && run > a.max_restarts) {
      note("giving up after ", a.max_restarts, " restarts");
      return 1;
    }
    int64_t delay = a.backoff_ms;
    for (int i = 1; i < failures && delay < a.max_backoff_ms; ++i) delay *= 2;
    delay = std::min(delay, a.max_backoff_ms);
    note("restart ", run, " in ", delay, " ms (", failures, " failure(s) in a row)");
    const auto wake = Clock::now() + std::chrono::milliseconds(delay);
    while (Clock::now() < wake && g_stop_signal.load() == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (g_stop_signal.load() != 0) return 0;
  }
}

}  // namespace

CommandFn add_supervise_command(CLI::App& app) {
  auto a = std::make_shared<SuperviseArgs>();
  CLI::App* c = app.add_subcommand(
      "supervise",
      "Run a serving job and restart it after a failure: argent supervise [options] -- mpirun "
      "... argent serve ...");
  c->add_option("command", a->command, "The job's command line (after --)")->required();
  c->add_option("--endpoint", a->endpoint,
                "The job's gateway endpoint: a stale ipc:// socket file is removed before each "
                "start, and the time until the cluster answers Health is logged");
  c->add_option("--max-restarts", a->max_restarts, "Give up after this many restarts (0: never)")
      ->capture_default_str();
  c->add_option("--backoff-ms", a->backoff_ms, "Delay before the first restart; doubles with "
                "each failure in a row")->capture_default_str();
  c->add_option("--max-backoff-ms", a->max_backoff_ms, "Bound of the restart delay")
      ->capture_default_str();
  c->add_option("--stable-after-s", a->stable_after_s,
                "A run that lasted this long resets the backoff")->capture_default_str();
  c->add_option("--stop-timeout-s", a->stop_timeout_s,
                "On SIGTERM/SIGINT: time the job gets to stop before SIGKILL")
      ->capture_default_str();
  return [a] { return run_supervise(*a); };
}

}  // namespace argent
