#include "core/data/text_source.h"

#include <cerrno>
#include <cstring>

#include "core/util/file_util.h"

namespace qlorad::data {
namespace {
constexpr size_t kChunk = 1 << 20;
}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  const unsigned char* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // Fast path: 8 ASCII bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

absl::StatusOr<std::unique_ptr<ChunkedFile>> ChunkedFile::Open(const std::string& path, bool hash) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoStatus(errno, "cannot open dataset source", path);
  return std::unique_ptr<ChunkedFile>(new ChunkedFile(path, f, hash));
}

ChunkedFile::ChunkedFile(std::string path, std::FILE* file, bool hash)
    : path_(std::move(path)), file_(file), sha_(hash ? std::make_unique<Sha256>() : nullptr) {
  buffer_.resize(kChunk);
}

ChunkedFile::~ChunkedFile() { std::fclose(file_); }

absl::StatusOr<bool> ChunkedFile::Refill() {
  if (eof_) return false;
  size_t n = std::fread(buffer_.data(), 1, kChunk, file_);
  if (n < kChunk) {
    if (std::ferror(file_)) return ErrnoStatus(errno, "cannot read dataset source", path_);
    eof_ = true;
  }
  if (sha_) sha_->Update(buffer_.data(), n);
  pos_ = 0;
  end_ = n;
  if (first_chunk_) {
    first_chunk_ = false;
    if (n >= 3 && std::memcmp(buffer_.data(), "\xEF\xBB\xBF", 3) == 0) {
      pos_ = 3;
      consumed_ += 3;
    }
  }
  return pos_ < end_;
}

absl::StatusOr<bool> ChunkedFile::ReadLine(size_t max_bytes, std::string* line, bool* too_long) {
  line->clear();
  *too_long = false;
  bool any = false;
  for (;;) {
    if (pos_ >= end_) {
      auto more = Refill();
      if (!more.ok()) return more.status();
      if (pos_ >= end_) {
        if (eof_) break;
        continue;
      }
    }
    any = true;
    const char* start = buffer_.data() + pos_;
    const void* nl = std::memchr(start, '\n', end_ - pos_);
    size_t take = nl ? static_cast<const char*>(nl) - start : end_ - pos_;
    if (!*too_long) {
      if (line->size() + take > max_bytes) {
        *too_long = true;
        line->clear();
        line->shrink_to_fit();
      } else {
        line->append(start, take);
      }
    }
    pos_ += take;
    consumed_ += take;
    if (nl) {
      ++pos_;
      ++consumed_;
      break;
    }
  }
  if (!any) return false;
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return true;
}

absl::StatusOr<int> ChunkedFile::Get() {
  if (pos_ >= end_) {
    for (;;) {
      auto more = Refill();
      if (!more.ok()) return more.status();
      if (pos_ < end_) break;
      if (eof_) return -1;
    }
  }
  ++consumed_;
  return static_cast<unsigned char>(buffer_[pos_++]);
}

std::string ChunkedFile::HexDigest() {
  if (digest_.empty() && sha_) digest_ = sha_->HexDigest();
  return digest_;
}

}  // namespace qlorad::data
