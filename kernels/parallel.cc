// Fork-join pool: persistent workers woken per job; chunks handed out by an atomic
// counter; the calling thread participates. A decode step is ~60 short jobs back to
// back, so both sides spin briefly before blocking: a worker watches for the next job
// for kSpin after finishing one, and the caller watches its helpers finish for up to
// kSpin before sleeping on the condition variable (measured on the 2-core dev machine:
// condition-variable hand-offs cost the fused fp32 decode ~15 % of its time). A job
// run with helpers_linger = false sends its helpers straight to the condition variable
// instead: its caller goes on to work with threads of its own (OpenBLAS), which the
// spinning would starve on a machine with as many cores as threads.
#include "kernels/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace qlorad::kernels {
namespace {

constexpr std::chrono::microseconds kSpin(200);
constexpr int64_t kFewUnits = 64;  // ParallelFor's chunking, see parallel.h

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpin has passed; returns done().
template <typename Done>
bool SpinUntil(const Done& done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
    CpuRelax();
  }
}

int DefaultThreads() {
  if (const char* env = std::getenv("QLORAD_KERNEL_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) return v;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int>& ThreadSetting() {
  static std::atomic<int> threads{DefaultThreads()};
  return threads;
}

class Pool {
 public:
  // Runs the job if the pool is free; returns false (nothing run) if it is busy.
  // The caller takes chunks too and only waits for helpers that already joined, so a
  // helper descheduled on a busy machine never delays the call.
  bool TryRun(int64_t n, int64_t chunk, int threads, bool linger,
              const std::function<void(int64_t, int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    EnsureWorkers(threads - 1);
    Job job{&fn, n, chunk, threads - 1, linger};
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    work_cv_.notify_all();
    RunChunks(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = nullptr;  // late helpers no longer join
    }
    if (SpinUntil([&] { return job.active.load(std::memory_order_acquire) == 0; })) {
      std::lock_guard<std::mutex> lock(mu_);  // the last helper has released mu_ too
      return true;
    }
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return job.active.load() == 0; });
    return true;
  }

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t n, chunk;
    int max_helpers;
    bool linger;                  // helpers spin for the next job after this one
    std::atomic<int64_t> next{0};
    int joined = 0;               // helpers that took part; guarded by mu_
    std::atomic<int> active{0};   // helpers inside RunChunks; changed under mu_
  };

  void EnsureWorkers(int wanted) {
    while (static_cast<int>(workers_.size()) < wanted) {
      workers_.emplace_back([this] { WorkerLoop(); });
      workers_.back().detach();  // the pool lives for the whole process
    }
  }

  static void RunChunks(Job& job) {
    for (;;) {
      const int64_t begin = job.next.fetch_add(job.chunk);
      if (begin >= job.n) break;
      (*job.fn)(begin, std::min(job.n, begin + job.chunk));
    }
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    bool linger = true;
    for (;;) {
      Job* job = nullptr;
      if (linger) SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        job = job_;
        if (job == nullptr || job->joined >= job->max_helpers) continue;
        ++job->joined;
        ++job->active;
        linger = job->linger;
      }
      RunChunks(*job);
      std::lock_guard<std::mutex> lock(mu_);
      if (--job->active == 0) done_cv_.notify_all();
    }
  }

  std::mutex busy_;  // held for a whole job
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};  // changed under mu_; read without it while spinning
};

Pool& GlobalPool() {
  static Pool* pool = new Pool();  // leaked on purpose: detached workers use it until exit
  return *pool;
}

}  // namespace

int NumThreads() { return ThreadSetting().load(); }
void SetNumThreads(int num_threads) { ThreadSetting().store(std::max(1, num_threads)); }

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, bool helpers_linger) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = static_cast<int>(std::min<int64_t>(NumThreads(), (n + grain - 1) / grain));
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  // About four chunks per thread balances uneven rows without much overhead; for a few
  // long units, chunks of `grain` (sgmv_bench: 32 items per call, 0.5–0.9 ms per step
  // faster than chunks of four items).
  const int64_t chunk = n <= kFewUnits ? grain : std::max<int64_t>(grain, (n + 4 * threads - 1) / (4 * threads));
  if (!GlobalPool().TryRun(n, chunk, threads, helpers_linger, fn)) fn(0, n);
}

}  // namespace qlorad::kernels
