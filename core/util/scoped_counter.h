// Counts something as in progress (a request in flight) for as long as the object lives.
#ifndef QLORAD_CORE_UTIL_SCOPED_COUNTER_H_
#define QLORAD_CORE_UTIL_SCOPED_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace qlorad {

class ScopedCounter {
 public:
  explicit ScopedCounter(std::atomic<int64_t>& counter) : counter_(counter) { ++counter_; }
  ~ScopedCounter() { --counter_; }
  ScopedCounter(const ScopedCounter&) = delete;
  ScopedCounter& operator=(const ScopedCounter&) = delete;

 private:
  std::atomic<int64_t>& counter_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_SCOPED_COUNTER_H_
