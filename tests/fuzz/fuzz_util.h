// Helpers shared by the libFuzzer targets: inputs that the code under test can only
// read from a path are written to an anonymous in-memory file (memfd), so fuzzing
// never touches the disk and each iteration sees exactly the fuzzer's bytes.
#ifndef QLORAD_TESTS_FUZZ_FUZZ_UTIL_H_
#define QLORAD_TESTS_FUZZ_FUZZ_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace qlorad::fuzz {

// An in-memory file holding given bytes; path() is "/proc/self/fd/<n>".
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) : fd_(memfd_create("qlorad-fuzz", 0)) {
    if (fd_ < 0) std::abort();
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

// A per-process scratch directory (for readers that take a directory), created once.
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string d = (std::filesystem::temp_directory_path() / ("qlorad-fuzz-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Overwrites `dir/name` with `bytes`.
inline void WriteFile(const std::string& dir, const std::string& name, std::string_view bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Splits the input at the first occurrence of `separator`: {before, after}; {input, ""} if absent.
inline std::pair<std::string_view, std::string_view> SplitOnce(std::string_view input, std::string_view separator) {
  const size_t at = input.find(separator);
  if (at == std::string_view::npos) return {input, {}};
  return {input.substr(0, at), input.substr(at + separator.size())};
}

// Keeps `value` (e.g. a checksum over every byte read) from being optimised away.
inline void KeepAlive(uint64_t value) { __asm__ volatile("" : : "g"(value) : "memory"); }

// The directory named by $QLORAD_FUZZ_FIXTURES (real files: tokenizers, models), or "".
inline std::string FixtureDir() {
  const char* dir = std::getenv("QLORAD_FUZZ_FIXTURES");
  return dir ? dir : "";
}

}  // namespace qlorad::fuzz

#endif  // QLORAD_TESTS_FUZZ_FUZZ_UTIL_H_
