// Process-wide settings for CPU compute, applied once at the top of main() before the
// program starts threads of its own (daemon, qlorad-tool, model/serving/training benches).
#ifndef QLORAD_CORE_UTIL_CPU_RUNTIME_H_
#define QLORAD_CORE_UTIL_CPU_RUNTIME_H_

#include <string>

namespace qlorad {

// Idle threads sleep instead of spinning. ATen's intra-op pool (OpenMP) and OpenBLAS's
// pthread pool each keep their threads spinning after every parallel region (libgomp
// ~300k spins, OpenBLAS up to 2^28 cycles with sched_yield), so on a machine with as many
// cores as threads each pool's spinners steal the cores the other one's next region needs.
// Measured on the 2-core dev machine (134M Llama, fp32): LoRA training 105 -> 196 tokens/s,
// prefill of 512 tokens 380 -> 664 tokens/s; the fused decoder (its own pool) unchanged.
// Both libraries read their settings when they are loaded, so this sets
// OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=4 (those the operator has not set)
// and re-executes the program (same pid, same argv) once, which costs one more start-up
// (~0.5 s with libtorch). QLORAD_CPU_RUNTIME set to any value (e.g. "keep") skips it; the
// re-executed program carries QLORAD_CPU_RUNTIME=applied. Set it too when the program runs
// under a tool that does not follow exec (valgrind without --trace-children) or is started
// through the dynamic loader. Returns only when no re-execution is needed or it failed
// (then the settings are removed again and a warning goes to stderr).
//
// glibc malloc: blocks up to 64 MB come from the heap (M_MMAP_THRESHOLD) and the heap
// is trimmed only above 256 MB free (M_TRIM_THRESHOLD), so the large temporaries of a
// prefill reuse memory instead of page-faulting a fresh mapping on every forward
// (prefill of 512 tokens, 134M model, 2 cores: 569 -> 798 tokens/s measured). The
// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment tunables, when set, win.
//
// The BLAS kernel set is left alone: Debian's OpenBLAS 0.3.21 runs its AVX2 kernels on
// AVX-512 CPUs it does not know (AMD Zen 4: 144 GFLOP/s fp32 GEMM on 2 cores, against 218
// with OPENBLAS_CORETYPE=SkylakeX), but older OpenBLAS builds are known to compute wrong
// results on some processors, so choosing its kernels stays the operator's call.
void ConfigureCpuRuntime(char** argv);

// One line for start-up logs: the idle-thread settings in effect and the BLAS kernel set, e.g.
// "OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS Cooperlake)"; unset ones print
// as "OMP_WAIT_POLICY=(unset)".
std::string CpuRuntimeSummary();

// The OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...), for logs and benchmarks;
// "" when the BLAS library is not OpenBLAS.
std::string BlasCoreName();

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_CPU_RUNTIME_H_
