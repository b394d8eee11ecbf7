#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer/regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace qlorad::tokenizer {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// Per-thread match data, grown on demand (avoids an allocation per FindAll).
struct ThreadMatchData {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchData() {
    data = pcre2_match_data_create(16, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchData() {
    if (data) pcre2_match_data_free(data);
    if (context) pcre2_match_context_free(context);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

ThreadMatchData& MatchData() {
  thread_local ThreadMatchData data;
  return data;
}

size_t NextCharLength(std::string_view text, size_t pos) {
  const auto b = static_cast<unsigned char>(text[pos]);
  size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  return pos + len > text.size() ? text.size() - pos : len;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Create(const std::string& pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    return absl::InvalidArgumentError(absl::StrCat("regex pattern '", pattern, "' does not compile at offset ",
                                                   error_offset, ": ", reinterpret_cast<char*>(buffer)));
  }
  auto regex = std::unique_ptr<Regex>(new Regex());
  regex->pattern_ = pattern;
  regex->impl_ = std::make_unique<Impl>();
  regex->impl_->code = code;
  regex->impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

Regex::~Regex() = default;

void Regex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  matches->clear();
  ThreadMatchData& md = MatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, 0, md.data, md.context)
                              : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                                            md.data, md.context);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource error: no further matches
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(md.data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    matches->emplace_back(begin, end);
    if (end > begin) {
      pos = end;
    } else {
      if (begin >= text.size()) break;
      pos = begin + NextCharLength(text, begin);
    }
  }
}

}  // namespace qlorad::tokenizer
