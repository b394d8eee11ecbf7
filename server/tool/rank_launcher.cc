#include "server/tool/rank_launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"

namespace qlorad::tool {
namespace {

// A port the kernel reports free now (the rendezvous binds it moments later).
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

std::string HowItEnded(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

pid_t SpawnRank(const std::vector<std::string>& rank_args, int rank, int world_size, int port) {
  std::vector<std::string> args = {"qlorad-tool"};
  args.insert(args.end(), rank_args.begin(), rank_args.end());
  if (rank != 0) args.push_back("--quiet");
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::setenv("RANK", std::to_string(rank).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(world_size).c_str(), 1);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "qlorad-tool: rank %d: exec failed: %s\n", rank, std::strerror(errno));
  ::_exit(127);
}

void StopAll(std::map<pid_t, int>& running) {
  for (const auto& [pid, rank] : running) {
    ::kill(pid, SIGTERM);
    ::kill(pid, SIGCONT);  // a stopped (hung) rank handles its SIGTERM
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      running.erase(pid);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  for (const auto& [pid, rank] : running) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  running.clear();
}

// A rank killed by a signal makes its peers fail their collectives soon after; when the
// first rank reaped failed by itself, a peer killed within a short grace is the cause.
std::pair<int, int> Culprit(std::map<pid_t, int>& running, int rank, int status) {
  if (WIFSIGNALED(status)) return {rank, status};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    int other = 0;
    const pid_t pid = ::waitpid(-1, &other, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const int other_rank = it->second;
    running.erase(it);
    if (WIFSIGNALED(other)) return {other_rank, other};
  }
  return {rank, status};
}

}  // namespace

absl::Status LaunchLocalRanks(const std::vector<std::string>& rank_args, int world_size) {
  const int port = FreeLoopbackPort();
  if (port == 0) return absl::UnavailableError("no free loopback port for the rendezvous");
  std::fflush(stdout);
  std::fflush(stderr);
  std::map<pid_t, int> running;
  for (int rank = 0; rank < world_size; ++rank) {
    const pid_t pid = SpawnRank(rank_args, rank, world_size, port);
    if (pid < 0) {
      StopAll(running);
      return absl::InternalError(absl::StrCat("cannot start rank ", rank, ": ", std::strerror(errno)));
    }
    running[pid] = rank;
  }
  std::fprintf(stderr, "qlorad-tool: %d ranks on 127.0.0.1:%d\n", world_size, port);
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const int rank = it->second;
    running.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    const auto [culprit, how] = Culprit(running, rank, status);
    StopAll(running);
    return absl::AbortedError(absl::StrCat("rank ", culprit, " of ", world_size, " ", HowItEnded(how),
                                           "; the other ranks were stopped (hint: run the same command again to "
                                           "resume from the last checkpoint)"));
  }
  return absl::OkStatus();
}

}  // namespace qlorad::tool
