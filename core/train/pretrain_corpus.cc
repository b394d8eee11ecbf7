#include "core/train/pretrain_corpus.h"

#include "absl/strings/str_cat.h"

namespace qlorad {

void HoldOutEvery(std::vector<PretrainDocument>& documents, int64_t every) {
  if (every <= 0) return;
  for (size_t i = 0; i < documents.size(); ++i)
    documents[i].held_out = static_cast<int64_t>(i) % every == every / 2;
}

absl::StatusOr<PretrainCorpus> TokenizeCorpus(const std::vector<PretrainDocument>& documents,
                                              const tokenizer::Tokenizer& tokenizer) {
  PretrainCorpus corpus;
  for (const PretrainDocument& document : documents) {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(document.text, /*add_special_tokens=*/true);
    if (!ids.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("document ", document.name, " does not tokenize: ", ids.status().message()));
    if (ids->empty()) continue;
    std::vector<int64_t>& stream = document.held_out ? corpus.held_out : corpus.train;
    stream.insert(stream.end(), ids->begin(), ids->end());
    if (tokenizer.eos_id().has_value()) stream.push_back(*tokenizer.eos_id());
    ++(document.held_out ? corpus.held_out_documents : corpus.train_documents);
    if (document.held_out) corpus.held_out_names.push_back(document.name);
  }
  if (corpus.train.empty())
    return absl::InvalidArgumentError("the pretraining corpus has no training text (hint: check --text-dir/--jsonl)");
  if (corpus.held_out.empty())
    return absl::InvalidArgumentError(
        "the pretraining corpus holds no document out (hint: --held-out-every N with more than N documents)");
  return corpus;
}

}  // namespace qlorad
