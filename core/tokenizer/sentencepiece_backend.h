// The interface between qlorad and the SentencePiece plugin.
//
// Why a plugin: Debian's libsentencepiece bundles its own copy of protobuf-lite
// and exports those symbols. In a process that also loads libprotobuf (libtorch
// and gRPC do), the two copies interpose each other's symbols and the process
// crashes during static initialisation. The plugin (libqlorad_sentencepiece.so,
// the only object linked against libsentencepiece) is therefore loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): its protobuf stays private.
#ifndef QLORAD_CORE_TOKENIZER_SENTENCEPIECE_BACKEND_H_
#define QLORAD_CORE_TOKENIZER_SENTENCEPIECE_BACKEND_H_

#include <string>
#include <vector>

namespace qlorad::tokenizer {

// Methods returning std::string return "" on success, else the library's error.
class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  virtual std::string Load(const std::string& path) = 0;
  virtual std::string Encode(const std::string& text, std::vector<int>* ids) const = 0;
  virtual std::string Decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual int PieceSize() const = 0;
  virtual int PieceToId(const std::string& piece) const = 0;
  virtual std::string IdToPiece(int id) const = 0;
  virtual bool IsControl(int id) const = 0;
  virtual bool IsUnknown(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// The plugin's one exported symbol.
inline constexpr char kCreateSentencePieceBackendSymbol[] = "QloradCreateSentencePieceBackend";
using CreateSentencePieceBackendFn = SentencePieceBackend* (*)();

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_SENTENCEPIECE_BACKEND_H_
