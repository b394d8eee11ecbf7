// Test-only text material for the drift scenario (design.md section 6) and a
// stand-in tokenizer. The word-level hashing tokenizer exists only because the
// real tokenizer library is written in parallel: DriftProfile works on token
// ids, so the real tokenizer plugs in without changing the monitor.
#ifndef QLORAD_TESTS_CORE_MONITOR_TEXT_CORPORA_H_
#define QLORAD_TESTS_CORE_MONITOR_TEXT_CORPORA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/monitor/drift_profile.h"

namespace qlorad::monitor::testing {

inline constexpr int32_t kHashVocabSize = 32000;

// Lowercases ASCII; a token is a run of [a-z0-9'] or one other non-space
// byte; id = FNV-1a-32(token) mod kHashVocabSize. Deterministic.
std::vector<int32_t> HashTokenize(const std::string& text);

// A stand-in embedding (NOT a model embedding): the mean over the prompt's
// tokens of a fixed pseudo-random vector per token id plus a shared offset
// (real LLM embeddings share a large common direction). Dimension `dim`.
std::vector<float> HashEmbedding(const std::vector<int32_t>& token_ids, int dim = 32);

// Tokenised PromptSample (with HashEmbedding) for each text.
std::vector<PromptSample> ToPrompts(const std::vector<std::string>& texts);

// UCI sentiment sentences: "text" of sentiment/test/fixtures/{imdb,yelp,amazon}.json,
// records with a null class dropped, in file order.
absl::StatusOr<std::vector<std::string>> LoadSentimentSentences();
// SpamAssassin emails ("text" of every file in file_list.json, in list order).
absl::StatusOr<std::vector<std::string>> LoadSpamAssassinEmails();
// State of the Union speeches split into sentences (". ", "? ", "! " ends),
// speeches in file-name order; sentences shorter than 3 words dropped.
absl::StatusOr<std::vector<std::string>> LoadSotuSentences();

}  // namespace qlorad::monitor::testing

#endif  // QLORAD_TESTS_CORE_MONITOR_TEXT_CORPORA_H_
