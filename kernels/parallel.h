// A small fork-join pool for the CPU kernels (no torch, no OpenMP).
#ifndef QLORAD_KERNELS_PARALLEL_H_
#define QLORAD_KERNELS_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace qlorad::kernels {

// Runs fn(begin, end) over disjoint chunks covering [0, n), each at least `grain`
// long (except the last), on up to NumThreads() threads; the caller works too and
// the call returns when every chunk is done. Chunks are `grain` long when n <= 64 (a few
// long units of work, e.g. SGMV items: a helper that joins late still takes its share),
// else about four per thread. A call made while the pool is busy
// (nested, or from another thread) runs serially in the caller, so it never deadlocks.
// fn must not throw.
// helpers_linger: after a job the helper threads spin for up to 200 µs waiting for the next
// one (decode runs ~60 jobs back to back). Pass false when the caller's next work is not
// another ParallelFor but, say, BLAS calls with threads of their own: the helpers then block
// right away and leave the cores to those threads.
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                 bool helpers_linger = true);

// Threads used by ParallelFor (default: hardware concurrency, or the environment
// variable QLORAD_KERNEL_THREADS). SetNumThreads(k) with k >= 1 takes effect on the
// next call.
int NumThreads();
void SetNumThreads(int num_threads);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_PARALLEL_H_
