#include "core/tokenizer/sentencepiece_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "core/tokenizer/sentencepiece_backend.h"

namespace qlorad::tokenizer {
namespace {

// RTLD_DEEPBIND keeps the plugin's protobuf private, but the sanitizer runtimes refuse it
// (google/sanitizers#611). Sanitizer builds load the plugin without it; their processes
// that use SentencePiece (tokenizer tests, fuzzers) link no other protobuf.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)  // GCC
#define QLORAD_SANITIZER_RUNTIME 1
#elif defined(__has_feature)  // clang
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QLORAD_SANITIZER_RUNTIME 1
#endif
#endif
#ifdef QLORAD_SANITIZER_RUNTIME
constexpr int kPluginDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kPluginDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

struct Plugin {
  CreateSentencePieceBackendFn create = nullptr;
  std::string error;
};

// Loads the plugin once per process: $QLORAD_SENTENCEPIECE_PLUGIN, else the
// build tree's copy, else the installed one. Never unloaded.
const Plugin& LoadPlugin() {
  static Plugin plugin;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("QLORAD_SENTENCEPIECE_PLUGIN")) candidates.push_back(env);
    candidates.push_back(QLORAD_SENTENCEPIECE_PLUGIN_BUILD_PATH);
    candidates.push_back(QLORAD_SENTENCEPIECE_PLUGIN_INSTALL_PATH);
    for (const std::string& path : candidates) {
      void* handle = ::dlopen(path.c_str(), kPluginDlopenFlags);
      if (handle == nullptr) {
        plugin.error += path + ": " + ::dlerror() + "; ";
        continue;
      }
      plugin.create = reinterpret_cast<CreateSentencePieceBackendFn>(::dlsym(handle, kCreateSentencePieceBackendSymbol));
      if (plugin.create != nullptr) return;
      plugin.error += path + ": no symbol " + kCreateSentencePieceBackendSymbol + "; ";
    }
  });
  return plugin;
}

constexpr char kNotLoaded[] = "SentencePiece model not loaded";

}  // namespace

struct SentencePieceLibrary::Impl {
  std::unique_ptr<SentencePieceBackend> backend;
};

SentencePieceLibrary::SentencePieceLibrary() : impl_(std::make_unique<Impl>()) {}
SentencePieceLibrary::~SentencePieceLibrary() = default;

std::string SentencePieceLibrary::Load(const std::string& path) {
  const Plugin& plugin = LoadPlugin();
  if (plugin.create == nullptr)
    return "cannot load the SentencePiece plugin (" + plugin.error +
           "hint: build target qlorad_sentencepiece or set QLORAD_SENTENCEPIECE_PLUGIN)";
  impl_->backend.reset(plugin.create());
  return impl_->backend->Load(path);
}

std::string SentencePieceLibrary::Encode(const std::string& text, std::vector<int>* ids) const {
  return impl_->backend ? impl_->backend->Encode(text, ids) : kNotLoaded;
}
std::string SentencePieceLibrary::Decode(const std::vector<int>& ids, std::string* text) const {
  return impl_->backend ? impl_->backend->Decode(ids, text) : kNotLoaded;
}
int SentencePieceLibrary::PieceSize() const { return impl_->backend ? impl_->backend->PieceSize() : 0; }
int SentencePieceLibrary::PieceToId(const std::string& piece) const {
  return impl_->backend ? impl_->backend->PieceToId(piece) : -1;
}
std::string SentencePieceLibrary::IdToPiece(int id) const { return impl_->backend ? impl_->backend->IdToPiece(id) : ""; }
bool SentencePieceLibrary::IsControl(int id) const { return impl_->backend && impl_->backend->IsControl(id); }
bool SentencePieceLibrary::IsUnknown(int id) const { return impl_->backend && impl_->backend->IsUnknown(id); }
int SentencePieceLibrary::bos_id() const { return impl_->backend ? impl_->backend->bos_id() : -1; }
int SentencePieceLibrary::eos_id() const { return impl_->backend ? impl_->backend->eos_id() : -1; }

}  // namespace qlorad::tokenizer
