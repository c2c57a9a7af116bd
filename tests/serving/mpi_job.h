// Starts `mpirun ... argent serve` as a child process for the serving tests, and stops it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cstdlib>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace argent::testing {

class MpiJob {
 public:
  // Runs `argv` with stdout and stderr appended to `log_path`.
  MpiJob(const std::vector<std::string>& argv, const std::string& log_path) : log_path_(log_path) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~MpiJob() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // The wait status once the job exited (stop() returned true).
  int status() const { return status_; }

  // Sends `signal` and waits up to `timeout` for the job to exit; returns whether it did.
  bool stop(int signal, std::chrono::seconds timeout) {
    if (pid_ <= 0) return false;
    if (exited_) return true;
    if (signal != 0) kill(pid_, signal);
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < give_up) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        status_ = status;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Simulates a crash of the whole job: SIGKILL to mpirun and every process below it (the ranks
  // get no chance to flush, log or reply), then reaps mpirun. Returns whether it exited.
  bool kill_tree() {
    if (pid_ <= 0 || exited_) return exited_;
    std::vector<pid_t> tree = descendants(pid_);
    tree.push_back(pid_);
    for (pid_t p : tree) kill(p, SIGSTOP);  // freeze first: nothing reacts to the others dying
    for (pid_t p : tree) kill(p, SIGKILL);
    return stop(0, std::chrono::seconds(30));
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Every process whose parent chain reaches `root`, from /proc.
  static std::vector<pid_t> descendants(pid_t root) {
    std::vector<std::pair<pid_t, pid_t>> parent;  // (pid, ppid)
    if (DIR* d = opendir("/proc")) {
      while (dirent* e = readdir(d)) {
        const pid_t pid = pid_t(std::atoi(e->d_name));
        if (pid <= 0) continue;
        std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
        std::string line;
        std::getline(stat, line);
        const size_t close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        parent.emplace_back(pid, ppid);
      }
      closedir(d);
    }
    std::vector<pid_t> out, frontier = {root};
    while (!frontier.empty()) {
      const pid_t p = frontier.back();
      frontier.pop_back();
      for (const auto& [pid, ppid] : parent)
        if (ppid == p) {
          out.push_back(pid);
          frontier.push_back(pid);
        }
    }
    return out;
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace argent::testing
