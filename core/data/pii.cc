#include "core/data/pii.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/data/string_view_compat.h"

namespace qlorad::data {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsLocalChar(char c) { return IsAlnum(c) || std::strchr("._%+-=!#$&*/?^`{|}~'", c) != nullptr; }
bool IsDomainChar(char c) { return IsAlnum(c) || c == '-' || c == '.' || c == '_'; }

std::string DigitsOf(std::string_view s) {
  std::string d;
  for (char c : s) {
    if (IsDigit(c)) d.push_back(c);
  }
  return d;
}

// Returns the longest prefix of `match` ending at a group boundary (before a space/dash, or
// the full match) for which `valid(prefix)` holds; 0 if none.
size_t LongestValidGroupPrefix(std::string_view match, const std::function<bool(std::string_view)>& valid) {
  if (valid(match)) return match.size();
  for (size_t end = match.size(); end-- > 1;) {
    if ((match[end] == ' ' || match[end] == '-') && valid(match.substr(0, end))) return end;
  }
  return 0;
}

struct Candidate {
  size_t begin, end;
  int priority;
  const std::string* type;
};

}  // namespace

struct PiiAnonymizer::Detector {
  std::string type;
  int priority = 0;
  pcre2_code* code = nullptr;  // null for the hand-written scanners
  bool utf = false;
  char required = 0;  // prefilter: skip texts without this byte ('0' = any digit)
  // Returns the accepted length of the match (0 = reject). Null = accept all.
  std::function<size_t(std::string_view)> accept;
  // Hand-written scanner (EMAIL, URL_CREDENTIALS).
  std::function<void(std::string_view, std::vector<std::pair<size_t, size_t>>*)> scan;

  ~Detector() {
    if (code) pcre2_code_free(code);
  }

  void FindAll(std::string_view text, std::vector<Candidate>* out) const {
    if (required == '0') {
      if (std::none_of(text.begin(), text.end(), IsDigit)) return;
    } else if (required != 0 && text.find(required) == std::string_view::npos) {
      return;
    }
    if (scan) {
      std::vector<std::pair<size_t, size_t>> spans;
      scan(text, &spans);
      for (auto [b, e] : spans) out->push_back({b, e, priority, &type});
      return;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t offset = 0;
    while (offset <= text.size()) {
      int rc = pcre2_match(code, subject, text.size(), offset, utf ? PCRE2_NO_UTF_CHECK : 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (e > b) {
        size_t len = accept ? accept(text.substr(b, e - b)) : e - b;
        if (len > 0) out->push_back({b, b + len, priority, &type});
        offset = e;
      } else {
        offset = b + 1;
        while (utf && offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
      }
    }
    pcre2_match_data_free(md);
  }
};

namespace {

absl::StatusOr<pcre2_code*> Compile(const std::string& name, const std::string& pattern, bool utf) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t flags = utf ? PCRE2_UTF : 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &error,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    return absl::InvalidArgumentError(absl::StrCat("PII pattern '", name, "' does not compile at offset ", error_offset,
                                                   ": ", reinterpret_cast<char*>(buffer)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  return code;
}

void ScanEmails(std::string_view t, std::vector<std::pair<size_t, size_t>>* out) {
  size_t next_free = 0;
  for (size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
    if (at < next_free) continue;
    size_t left = at;
    while (left > next_free && at - left < 64 && IsLocalChar(t[left - 1])) --left;
    while (left < at && std::strchr("'`{|}~/?^!#$&*=", t[left]) != nullptr) ++left;
    if (left == at) continue;
    size_t right = at + 1;
    while (right < t.size() && IsDomainChar(t[right])) ++right;
    while (right > at + 1 && (t[right - 1] == '.' || t[right - 1] == '-')) --right;
    std::string_view domain = t.substr(at + 1, right - at - 1);
    if (domain.empty() || domain.front() == '.' || domain.find("..") != std::string_view::npos) continue;
    bool ok = absl::EqualsIgnoreCase(ToAbsl(domain), "localhost");
    size_t dot = domain.rfind('.');
    if (dot != std::string_view::npos && dot + 2 <= domain.size()) ok = true;
    if (!ok) continue;
    out->push_back({left, right});
    next_free = right;
  }
}

bool SecretQuery(std::string_view query) {
  static const char* kNames[] = {"token",  "access_token",  "api_key",  "apikey",       "key",
                                 "secret", "password",      "passwd",   "pwd",          "auth",
                                 "sig",    "signature",     "session",  "sessionid",    "sid",
                                 "code",   "refresh_token", "id_token", "client_secret"};
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find_first_of("&;", pos);
    std::string_view param = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    size_t eq = param.find('=');
    if (eq != std::string_view::npos && eq + 1 < param.size()) {
      std::string_view name = param.substr(0, eq);
      for (const char* n : kNames) {
        if (absl::EqualsIgnoreCase(ToAbsl(name), n)) return true;
      }
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return false;
}

void ScanUrls(std::string_view t, std::vector<std::pair<size_t, size_t>>* out) {
  for (size_t sep = t.find("://"); sep != std::string_view::npos; sep = t.find("://", sep + 3)) {
    size_t begin = sep;
    while (begin > 0 && (IsAlnum(t[begin - 1]) || t[begin - 1] == '+' || t[begin - 1] == '.' || t[begin - 1] == '-')) {
      --begin;
    }
    while (begin < sep && !std::isalpha(static_cast<unsigned char>(t[begin]))) ++begin;
    if (begin == sep) continue;
    size_t end = sep + 3;
    while (end < t.size() && !std::isspace(static_cast<unsigned char>(t[end])) &&
           std::strchr("<>\"'`", t[end]) == nullptr) {
      ++end;
    }
    while (end > sep + 3 && std::strchr(".,;:!?)]}", t[end - 1]) != nullptr) --end;
    std::string_view url = t.substr(sep + 3, end - sep - 3);
    size_t authority_end = url.find_first_of("/?#");
    std::string_view authority = url.substr(0, authority_end);
    bool secret = authority.find('@') != std::string_view::npos && authority.find('@') > 0;
    size_t q = url.find('?');
    if (!secret && q != std::string_view::npos) {
      std::string_view query = url.substr(q + 1);
      query = query.substr(0, query.find('#'));
      secret = SecretQuery(query);
    }
    if (secret) out->push_back({begin, end});
  }
}

bool IbanMod97(std::string_view iban) {
  std::string s;
  for (char c : iban) {
    if (c != ' ') s.push_back(c);
  }
  if (s.size() < 15 || s.size() > 34) return false;
  std::string rearranged = s.substr(4) + s.substr(0, 4);
  int mod = 0;
  for (char c : rearranged) {
    if (IsDigit(c)) {
      mod = (mod * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      mod = (mod * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return mod == 1;
}

size_t PhoneAccept(std::string_view m) {
  std::string d = DigitsOf(m);
  bool international = m[0] == '+' || (m.size() > 2 && m[0] == '0' && m[1] == '0');
  if (international) return d.size() >= 8 && d.size() <= 17 ? m.size() : 0;  // 00 prefix adds 2 digits
  return d.size() >= 9 && d.size() <= 11 ? m.size() : 0;
}

bool Ipv6Valid(std::string_view m) {
  std::string s(m);
  in6_addr addr;
  if (inet_pton(AF_INET6, s.c_str(), &addr) != 1) return false;
  int groups = 0;
  bool in_group = false;
  for (char c : m) {
    if (c == ':') {
      in_group = false;
    } else if (!in_group) {
      in_group = true;
      ++groups;
    }
  }
  return groups >= 3;
}

}  // namespace

bool PiiAnonymizer::LuhnValid(std::string_view text) {
  std::string d = DigitsOf(text);
  if (d.size() < 13 || d.size() > 19) return false;
  int sum = 0;
  bool dbl = false;
  for (size_t i = d.size(); i-- > 0;) {
    int v = d[i] - '0';
    if (dbl) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    dbl = !dbl;
  }
  return sum % 10 == 0 && d.find_first_not_of('0') != std::string::npos;
}

bool PiiAnonymizer::IbanValid(std::string_view iban) { return IbanMod97(iban); }

bool PiiAnonymizer::PeselValid(std::string_view digits) {
  if (digits.size() != 11 || !std::all_of(digits.begin(), digits.end(), IsDigit)) return false;
  static const int kWeights[10] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3};
  int sum = 0;
  for (int i = 0; i < 10; ++i) sum += kWeights[i] * (digits[i] - '0');
  if ((10 - sum % 10) % 10 != digits[10] - '0') return false;
  int yy = (digits[0] - '0') * 10 + (digits[1] - '0');
  int mm = (digits[2] - '0') * 10 + (digits[3] - '0');
  int dd = (digits[4] - '0') * 10 + (digits[5] - '0');
  int century = 1900;
  if (mm > 80) {
    century = 1800, mm -= 80;
  } else if (mm > 60) {
    century = 2200, mm -= 60;
  } else if (mm > 40) {
    century = 2100, mm -= 40;
  } else if (mm > 20) {
    century = 2000, mm -= 20;
  }
  if (mm < 1 || mm > 12 || dd < 1) return false;
  int year = century + yy;
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return dd <= kDays[mm - 1] + (mm == 2 && leap ? 1 : 0);
}

absl::StatusOr<std::unique_ptr<PiiAnonymizer>> PiiAnonymizer::Create(const PiiOptions& options) {
  auto anonymizer = std::unique_ptr<PiiAnonymizer>(new PiiAnonymizer(options));
  auto disabled = [&](const std::string& type) {
    return std::find(options.disabled_types.begin(), options.disabled_types.end(), type) !=
           options.disabled_types.end();
  };
  int priority = 0;
  auto add = [&](std::string type, const char* pattern, char required,
                 std::function<size_t(std::string_view)> accept) -> absl::Status {
    ++priority;
    if (disabled(type)) return absl::OkStatus();
    auto d = std::make_unique<Detector>();
    auto code = Compile(type, pattern, false);
    if (!code.ok()) return code.status();
    d->code = *code;
    d->type = std::move(type);
    d->priority = priority;
    d->required = required;
    d->accept = std::move(accept);
    anonymizer->detectors_.push_back(std::move(d));
    return absl::OkStatus();
  };
  for (const PiiUserPattern& user : options.user_patterns) {
    if (user.name.empty() || !std::isalpha(static_cast<unsigned char>(user.name[0])) ||
        !std::all_of(user.name.begin(), user.name.end(), [](char c) { return IsAlnum(c) || c == '_'; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PII pattern name '", user.name, "' must match [A-Za-z][A-Za-z0-9_]* (it becomes the placeholder type)"));
    }
    auto d = std::make_unique<Detector>();
    auto code = Compile(user.name, user.pattern, true);
    if (!code.ok()) return code.status();
    d->code = *code;
    d->utf = true;
    d->type = absl::AsciiStrToUpper(user.name);
    d->priority = ++priority;
    anonymizer->detectors_.push_back(std::move(d));
  }
  auto add_scanner = [&](std::string type, char required, auto scan) {
    ++priority;
    if (disabled(type)) return;
    auto d = std::make_unique<Detector>();
    d->type = std::move(type);
    d->priority = priority;
    d->required = required;
    d->scan = scan;
    anonymizer->detectors_.push_back(std::move(d));
  };
  add_scanner("URL", ':', ScanUrls);
  add_scanner("EMAIL", '@', ScanEmails);
  absl::Status s;
  s.Update(add(
      "IBAN",
      R"((?<![A-Za-z0-9])(?:[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?|\d{2}(?: ?\d{4}){6})(?![A-Za-z0-9]))",
      '0', [](std::string_view m) {
        return LongestValidGroupPrefix(m, [](std::string_view p) {
          return IsDigit(p[0]) ? (DigitsOf(p).size() == 26 && IbanMod97(absl::StrCat("PL", ToAbsl(p)))) : IbanMod97(p);
        });
      }));
  s.Update(add("CARD", R"((?<!\d)\d(?:[ \-]?\d){12,18}(?!\d))", '0', [](std::string_view m) {
    return LongestValidGroupPrefix(m, [](std::string_view p) { return LuhnValid(p); });
  }));
  s.Update(
      add("PESEL", R"((?<!\d)\d{11}(?!\d))", '0', [](std::string_view m) { return PeselValid(m) ? m.size() : 0; }));
  s.Update(add("PHONE",
               R"((?<![\d+])(?:(?:\+|00)\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{1,4}){1,4})"
               R"(|(?:1[ .\-])?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4})"
               R"(|\d{3}[ \-]\d{3}[ \-]\d{3})"
               R"(|(?:\(\d{2}\)|\d{2})[ \-]\d{3}[ \-]\d{2}[ \-]\d{2})(?!\d))",
               '0', PhoneAccept));
  s.Update(add("IPV6", R"((?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:]))",
               ':', [](std::string_view m) { return Ipv6Valid(m) ? m.size() : 0; }));
  s.Update(add(
      "IPV4",
      R"((?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w])(?!\.\d))",
      '0', nullptr));
  if (!s.ok()) return s;
  return anonymizer;
}

PiiAnonymizer::PiiAnonymizer(const PiiOptions& options) : options_(options) {}
PiiAnonymizer::~PiiAnonymizer() = default;

std::vector<PiiSpan> PiiAnonymizer::Find(std::string_view text) const {
  std::vector<Candidate> candidates;
  if (!options_.enabled) return {};
  for (const auto& d : detectors_) d->FindAll(text, &candidates);
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.end > b.end;
  });
  std::map<size_t, const Candidate*> taken;  // begin -> candidate, non-overlapping
  for (const Candidate& c : candidates) {
    auto it = taken.lower_bound(c.begin);
    if (it != taken.end() && it->first < c.end) continue;
    if (it != taken.begin() && std::prev(it)->second->end > c.begin) continue;
    taken.emplace(c.begin, &c);
  }
  std::vector<PiiSpan> spans;
  spans.reserve(taken.size());
  for (const auto& [begin, c] : taken) spans.push_back({c->begin, c->end, *c->type});
  return spans;
}

size_t PiiAnonymizer::Anonymize(std::string* text, PlaceholderMap* map) const {
  std::vector<PiiSpan> spans = Find(*text);
  if (spans.empty()) return 0;
  std::string out;
  out.reserve(text->size());
  size_t pos = 0;
  for (const PiiSpan& s : spans) {
    out.append(*text, pos, s.begin - pos);
    out += map->PlaceholderFor(s.type, std::string_view(*text).substr(s.begin, s.end - s.begin));
    pos = s.end;
  }
  out.append(*text, pos, std::string::npos);
  *text = std::move(out);
  return spans.size();
}

void PiiAnonymizer::Record(const PlaceholderMap& map, int64_t line, PiiReport* report) const {
  ++report->records_scanned;
  if (map.occurrences().empty()) return;
  ++report->records_with_pii;
  for (const auto& [type, count] : map.occurrences()) {
    PiiReport::TypeStats& stats = report->by_type[type];
    stats.count += count;
    ++stats.records;
    if (stats.example_lines.size() < options_.max_example_lines) stats.example_lines.push_back(line);
  }
}

std::string PlaceholderMap::PlaceholderFor(const std::string& type, std::string_view value) {
  auto& values = values_[type];
  auto it = values.find(value);
  int index;
  if (it == values.end()) {
    index = static_cast<int>(values.size()) + 1;
    values.emplace(std::string(value), index);
  } else {
    index = it->second;
  }
  ++occurrences_[type];
  return absl::StrCat("[", type, "_", index, "]");
}

nlohmann::json PiiOptions::ToJson() const {
  nlohmann::json j;
  j["enabled"] = enabled;
  j["disabled_types"] = disabled_types;
  j["placeholder_style"] = "[TYPE_n], numbered per record, same value -> same placeholder within a record";
  nlohmann::json users = nlohmann::json::array();
  for (const auto& u : user_patterns) users.push_back({{"name", u.name}, {"pattern", u.pattern}});
  j["user_patterns"] = std::move(users);
  return j;
}

nlohmann::json PiiReport::ToJson() const {
  nlohmann::json j;
  j["records_scanned"] = records_scanned;
  j["records_with_pii"] = records_with_pii;
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [type, s] : by_type) {
    types[type] = {{"count", s.count}, {"records", s.records}, {"example_lines", s.example_lines}};
  }
  j["by_type"] = std::move(types);
  return j;
}

}  // namespace qlorad::data
