// PII detection and anonymisation, run on every text field BEFORE anything is
// stored for training.
//
// Detectors (each a PCRE2-JIT pattern, most followed by a checksum/validity check):
//   EMAIL       local@domain.tld (and local@localhost)
//   PHONE       international (+CC ... or 00CC ...), Polish mobile (601 234 567, 601-234-567,
//               +48 601234567), Polish landline ((22) 123 45 67, 22 123-45-67) and North
//               American ((800) 555-1234, 800-555-1234, 1-800.555.1234). Digit groups must be
//               separated; a bare run of digits is only a phone with a +CC / 00CC prefix.
//   IBAN        CC + 2 check digits + BBAN (optionally grouped by 4), ISO 13616 mod-97 == 1;
//               also a bare 26-digit Polish NRB that passes mod-97 as "PL"+digits.
//   CARD        13–19 digits (spaces/dashes between allowed) passing the Luhn check
//   PESEL       11 digits with a valid PESEL checksum and birth date
//   IPV4        dotted quad, each octet 0–255
//   IPV6        colon-hex forms accepted by inet_pton(AF_INET6) with >= 3 groups
//   URL         scheme://user[:password]@host..., or a URL whose query has a secret-looking
//               parameter (token, access_token, api_key, apikey, key, secret, password, passwd,
//               pwd, auth, sig, signature, session, sessionid, sid, code)
//   user regexes: PiiOptions::user_patterns, placeholder type = the upper-cased name
// Not detected (documented limits): obfuscated addresses ("jan at example dot com"), bare
// runs of 7-10 digits without a +CC/00CC prefix or separators, personal names and postal
// addresses (add user regexes for domain-specific identifiers).
// Overlaps are resolved by priority: user patterns, URL, EMAIL, IBAN, CARD, PESEL,
// PHONE, IPV6, IPV4 (a higher-priority span wins; equal priority: the earlier/longer one).
//
// Placeholders are typed and numbered per record: "[EMAIL_1]", "[EMAIL_2]", "[PHONE_1]" ...
// Within one record (all of its fields share one PlaceholderMap) the same value always maps
// to the same placeholder; numbering restarts for every record, so placeholders carry no
// information across records.
//
// The report holds counts per type and example line numbers only — never the values.
#ifndef QLORAD_CORE_DATA_PII_H_
#define QLORAD_CORE_DATA_PII_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

struct PiiUserPattern {
  std::string name;     // [A-Za-z][A-Za-z0-9_]*, becomes the placeholder type (upper-cased)
  std::string pattern;  // PCRE2 syntax, UTF mode
};

struct PiiOptions {
  bool enabled = true;
  std::vector<std::string> disabled_types;  // e.g. {"IPV4"} to keep IPv4 addresses
  std::vector<PiiUserPattern> user_patterns;
  size_t max_example_lines = 10;  // example line numbers kept per type in the report

  nlohmann::json ToJson() const;  // recorded in the dataset manifest (lineage)
};

// Counts and example line numbers per type, merged over all records.
struct PiiReport {
  struct TypeStats {
    uint64_t count = 0;    // replaced occurrences
    uint64_t records = 0;  // records with at least one occurrence
    std::vector<int64_t> example_lines;
  };
  std::map<std::string, TypeStats> by_type;
  uint64_t records_scanned = 0;
  uint64_t records_with_pii = 0;

  nlohmann::json ToJson() const;
};

// Same value -> same placeholder within one record. Create one per record.
class PlaceholderMap {
 public:
  std::string PlaceholderFor(const std::string& type, std::string_view value);
  // Types that received at least one placeholder, with occurrence counts.
  const std::map<std::string, uint64_t>& occurrences() const { return occurrences_; }

 private:
  std::map<std::string, std::map<std::string, int, std::less<>>> values_;
  std::map<std::string, uint64_t> occurrences_;
};

struct PiiSpan {
  size_t begin, end;  // byte offsets in the scanned text
  std::string type;
};

class PiiAnonymizer {
 public:
  // INVALID_ARGUMENT naming the pattern if a user regex does not compile.
  static absl::StatusOr<std::unique_ptr<PiiAnonymizer>> Create(const PiiOptions& options);
  ~PiiAnonymizer();

  // Non-overlapping detections in `text` (valid UTF-8), sorted by offset.
  std::vector<PiiSpan> Find(std::string_view text) const;
  // Replaces every detection in *text with its placeholder from `map`. Returns the count.
  size_t Anonymize(std::string* text, PlaceholderMap* map) const;
  // Adds one finished record (its map) to the report.
  void Record(const PlaceholderMap& map, int64_t line, PiiReport* report) const;

  const PiiOptions& options() const { return options_; }

  // The validity checks, exposed for tests.
  static bool LuhnValid(std::string_view digits);
  static bool IbanValid(std::string_view iban);  // spaces ignored
  static bool PeselValid(std::string_view digits);

  struct Detector;

 private:
  explicit PiiAnonymizer(const PiiOptions& options);
  PiiOptions options_;
  std::vector<std::unique_ptr<Detector>> detectors_;  // in priority order
};

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_PII_H_
