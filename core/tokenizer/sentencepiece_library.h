// A narrow, abseil-free facade over the SentencePiece library. Its header
// declares `namespace absl { using std::string_view; }`, which clashes with
// Debian's abseil, so only sentencepiece_library.cc includes it and this header
// uses standard types only.
#ifndef QLORAD_CORE_TOKENIZER_SENTENCEPIECE_LIBRARY_H_
#define QLORAD_CORE_TOKENIZER_SENTENCEPIECE_LIBRARY_H_

#include <memory>
#include <string>
#include <vector>

namespace qlorad::tokenizer {

class SentencePieceLibrary {
 public:
  SentencePieceLibrary();
  ~SentencePieceLibrary();
  // Returns "" on success, else the library's error message.
  std::string Load(const std::string& path);
  std::string Encode(const std::string& text, std::vector<int>* ids) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;
  int PieceSize() const;
  int PieceToId(const std::string& piece) const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  int bos_id() const;
  int eos_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_SENTENCEPIECE_LIBRARY_H_
