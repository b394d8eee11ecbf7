// The text corpus of full-parameter pretraining (qlorad-tool pretrain): documents are
// tokenized into two token streams, one to train on and one held out (whole documents,
// chosen deterministically by name) to measure perplexity on text the model never saw.
#ifndef QLORAD_CORE_TRAIN_PRETRAIN_CORPUS_H_
#define QLORAD_CORE_TRAIN_PRETRAIN_CORPUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad {

struct PretrainDocument {
  std::string name;  // a file name or "<file>:<line>"; names the document in errors
  std::string text;
  bool held_out = false;
};

struct PretrainCorpus {
  std::vector<int64_t> train;     // every training document, each framed by BOS ... EOS
  std::vector<int64_t> held_out;  // the same for the held-out documents
  int64_t train_documents = 0, held_out_documents = 0;
  std::vector<std::string> held_out_names;
};

// Marks every `every`-th document of `documents` (in the given order, starting with the
// (every/2)-th, so neither end of a chronological list is favoured) as held out.
// every <= 0 holds nothing out.
void HoldOutEvery(std::vector<PretrainDocument>& documents, int64_t every);

// Tokenizes each document with the tokenizer's special prefix (BOS) and appends its EOS
// (when it has one). INVALID_ARGUMENT naming the document when it does not encode, and
// when either stream ends up empty.
absl::StatusOr<PretrainCorpus> TokenizeCorpus(const std::vector<PretrainDocument>& documents,
                                              const tokenizer::Tokenizer& tokenizer);

}  // namespace qlorad

#endif  // QLORAD_CORE_TRAIN_PRETRAIN_CORPUS_H_
