// libqlorad_sentencepiece.so: SentencePieceBackend over the SentencePiece
// library. See sentencepiece_backend.h for why this is a separate plugin.
#include <sentencepiece_processor.h>

#include "core/tokenizer/sentencepiece_backend.h"

namespace qlorad::tokenizer {
namespace {

class Backend : public SentencePieceBackend {
 public:
  std::string Load(const std::string& path) override { return Check(processor_.Load(path)); }
  std::string Encode(const std::string& text, std::vector<int>* ids) const override {
    return Check(processor_.Encode(text, ids));
  }
  std::string Decode(const std::vector<int>& ids, std::string* text) const override {
    return Check(processor_.Decode(ids, text));
  }
  int PieceSize() const override { return processor_.GetPieceSize(); }
  int PieceToId(const std::string& piece) const override { return processor_.PieceToId(piece); }
  std::string IdToPiece(int id) const override { return processor_.IdToPiece(id); }
  bool IsControl(int id) const override { return processor_.IsControl(id); }
  bool IsUnknown(int id) const override { return processor_.IsUnknown(id); }
  int bos_id() const override { return processor_.bos_id(); }
  int eos_id() const override { return processor_.eos_id(); }

 private:
  static std::string Check(const sentencepiece::util::Status& status) {
    return status.ok() ? std::string() : status.ToString();
  }
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace
}  // namespace qlorad::tokenizer

extern "C" __attribute__((visibility("default"))) qlorad::tokenizer::SentencePieceBackend*
QloradCreateSentencePieceBackend() {
  return new qlorad::tokenizer::Backend();
}
