#include "core/train/gloo_collective.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#if QLORAD_HAVE_GLOO
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

using Clock = std::chrono::steady_clock;

absl::StatusOr<int> EnvInt(const char* name, int min, int max) {
  const char* text = std::getenv(name);
  int value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value) || value < min || value > max)
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "=", text ? text : "(unset)",
                                                   ": expected an integer in [", min, ", ", max, "]",
                                                   " (hint: set MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE as torchrun does)"));
  return value;
}

}  // namespace

absl::StatusOr<std::optional<RendezvousOptions>> RendezvousFromEnvironment() {
  if (std::getenv("RANK") == nullptr && std::getenv("WORLD_SIZE") == nullptr) return std::nullopt;
  RendezvousOptions o;
  QLORAD_ASSIGN_OR_RETURN(o.world_size, EnvInt("WORLD_SIZE", 1, 65536));
  QLORAD_ASSIGN_OR_RETURN(o.rank, EnvInt("RANK", 0, o.world_size - 1));
  QLORAD_ASSIGN_OR_RETURN(o.master_port, EnvInt("MASTER_PORT", 1, 65535));
  if (std::getenv("LOCAL_RANK") != nullptr) {
    QLORAD_ASSIGN_OR_RETURN(o.local_rank, EnvInt("LOCAL_RANK", 0, 65535));
  }
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0')
    return absl::InvalidArgumentError("environment variable MASTER_ADDR is unset (hint: rank 0's host name or address)");
  o.master_addr = addr;
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  o.agent_hosts_store = agent_store != nullptr && std::string(agent_store) == "True";
  return std::optional<RendezvousOptions>(o);
}

#if QLORAD_HAVE_GLOO
namespace {

// A c10d / Gloo failure as a status naming this rank and the operation.
absl::Status GroupError(int rank, int world_size, absl::string_view what, const std::exception& e) {
  std::string message = e.what();
  if (const size_t end = message.find("\nException raised from"); end != std::string::npos) message.resize(end);
  const std::string text = absl::StrCat(what, " failed on rank ", rank, " of ", world_size, ": ", message,
                                        " (hint: a peer rank died or hung; the run resumes from its last checkpoint"
                                        " when every rank is restarted)");
  if (absl::StrContains(message, "Timed out") || absl::StrContains(message, "timed out") ||
      absl::StrContains(message, "Timeout"))
    return absl::DeadlineExceededError(text);
  return absl::UnavailableError(text);
}

class GlooCollective : public Collective {
 public:
  GlooCollective(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank,
                 int world_size)
      : store_(std::move(store)), group_(std::move(group)), rank_(rank), world_size_(world_size) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::string_view backend() const override { return "gloo"; }

  absl::Status AllReduceSum(at::Tensor& tensor, absl::string_view what) override {
    const auto start = Clock::now();
    const std::string op = absl::StrCat("all-reduce of ", what);
    try {
      Entering(op);
      std::vector<at::Tensor> tensors{tensor};
      group_->allreduce(tensors)->wait();
    } catch (const std::exception& e) {
      return WithLaggards(GroupError(rank_, world_size_, op, e));
    }
    reduced_bytes_ += tensor.numel() * tensor.element_size();
    reduce_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    return absl::OkStatus();
  }

  absl::Status Barrier(absl::string_view what) override {
    const std::string op = absl::StrCat("barrier ", what);
    try {
      Entering(op);
      group_->barrier()->wait();
    } catch (const std::exception& e) {
      return WithLaggards(GroupError(rank_, world_size_, op, e));
    }
    return absl::OkStatus();
  }

 private:
  // Each rank records in the store how many collectives it has entered, and the last one;
  // after a failure the ranks that never reached this collective are named.
  static std::string ProgressKey(int rank) { return absl::StrCat("qlorad/entered/", rank); }

  void Entering(const std::string& op) {
    ++entered_;
    const std::string value = absl::StrCat(entered_, "|", op);
    store_->set(ProgressKey(rank_), std::vector<uint8_t>(value.begin(), value.end()));
  }

  absl::Status WithLaggards(const absl::Status& error) {
    std::string laggards;
    for (int r = 0; r < world_size_; ++r) {
      if (r == rank_) continue;
      try {
        if (!store_->check({ProgressKey(r)})) {
          absl::StrAppend(&laggards, laggards.empty() ? "" : "; ", "rank ", r, " entered no collective");
          continue;
        }
        const std::vector<uint8_t> raw = store_->get(ProgressKey(r));
        const std::string value(raw.begin(), raw.end());
        const size_t bar = value.find('|');
        if (std::stoll(value.substr(0, bar)) < entered_)
          absl::StrAppend(&laggards, laggards.empty() ? "" : "; ", "rank ", r, " did not reach it (its last: ",
                          value.substr(bar + 1), ")");
      } catch (const std::exception&) {
        absl::StrAppend(&laggards, laggards.empty() ? "" : "; ", "rank ", r, " unreachable");
      }
    }
    if (laggards.empty()) return error;
    return absl::Status(error.code(), absl::StrCat(error.message(), " [", laggards, "]"));
  }

  int64_t entered_ = 0;
  c10::intrusive_ptr<c10d::Store> store_;  // kept alive: rank 0's TCPStore serves the others
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  const int rank_, world_size_;
};

std::shared_ptr<gloo::transport::Device> GlooDevice(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (master_addr == "localhost" || absl::StartsWith(master_addr, "127."))
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

std::chrono::milliseconds Millis(absl::Duration d) { return std::chrono::milliseconds(absl::ToInt64Milliseconds(d)); }

absl::StatusOr<std::unique_ptr<Collective>> MakeGroup(c10::intrusive_ptr<c10d::Store> store,
                                                      const std::string& address, int rank, int world_size,
                                                      absl::Duration timeout) {
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(Millis(timeout));
    options->devices.push_back(GlooDevice(address));
    options->threads = 2;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
    return std::unique_ptr<Collective>(std::make_unique<GlooCollective>(std::move(store), std::move(group), rank,
                                                                        world_size));
  } catch (const std::exception& e) {
    return GroupError(rank, world_size, "joining the Gloo group", e);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Collective>> JoinGlooGroup(const RendezvousOptions& o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " is not in a world of size ", o.world_size));
  if (o.world_size == 1) return MakeSingleProcessCollective();
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(o.master_port);
    store_options.isServer = o.rank == 0 && !o.agent_hosts_store;
    store_options.numWorkers = static_cast<size_t>(o.world_size);
    store_options.waitWorkers = false;
    store_options.timeout = Millis(o.timeout);
    store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
    if (o.agent_hosts_store) {  // the agent's store outlives restarts: one key space per attempt
      const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
      store = c10::make_intrusive<c10d::PrefixStore>(absl::StrCat("qlorad/", restart ? restart : "0"), store);
    }
  } catch (const std::exception& e) {
    return GroupError(o.rank, o.world_size,
                      absl::StrCat("rendezvous at ", o.master_addr, ":", o.master_port, " (c10d TCPStore)"), e);
  }
  return MakeGroup(std::move(store), o.master_addr, o.rank, o.world_size, o.timeout);
}

absl::StatusOr<std::vector<std::unique_ptr<Collective>>> MakeInProcessGlooGroups(int world_size,
                                                                               absl::Duration timeout) {
  if (world_size < 1) return absl::InvalidArgumentError("world size must be >= 1");
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<absl::StatusOr<std::unique_ptr<Collective>>> made;
  for (int rank = 0; rank < world_size; ++rank) made.emplace_back(absl::UnknownError("not joined"));
  std::vector<std::thread> joiners;  // each rank's constructor blocks until all have joined
  for (int rank = 0; rank < world_size; ++rank)
    joiners.emplace_back([&, rank] { made[rank] = MakeGroup(store, "127.0.0.1", rank, world_size, timeout); });
  for (auto& t : joiners) t.join();
  std::vector<std::unique_ptr<Collective>> groups;
  for (auto& group : made) {
    QLORAD_RETURN_IF_ERROR(group.status());
    groups.push_back(std::move(group).value());
  }
  return groups;
}

#else
absl::StatusOr<std::unique_ptr<Collective>> JoinGlooGroup(const RendezvousOptions& o) {
  if (o.world_size == 1) return MakeSingleProcessCollective();
  return absl::UnimplementedError("this build has no Gloo (hint: install libgloo-dev and rebuild)");
}

absl::StatusOr<std::vector<std::unique_ptr<Collective>>> MakeInProcessGlooGroups(int, absl::Duration) {
  return absl::UnimplementedError("this build has no Gloo (hint: install libgloo-dev and rebuild)");
}
#endif

}  // namespace qlorad
