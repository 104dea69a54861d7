#include <dlfcn.h>
#include <unistd.h>

#include <mutex>

#include "core/error.h"
#include "core/files.h"
#include "data/spm_plugin.h"

namespace sx::data {
namespace {

using Create = SentencePieceEncoder* (*)();

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SX_SENTENCEPIECE_PLUGIN")) out.emplace_back(env);
  const std::string exe_dir = files::executable_dir();
  if (!exe_dir.empty()) {
    out.push_back(files::join(exe_dir, SX_SENTENCEPIECE_PLUGIN_NAME));
    out.push_back(
        files::join(files::join(files::parent(exe_dir), "lib"), SX_SENTENCEPIECE_PLUGIN_NAME));
  }
  out.emplace_back(SX_SENTENCEPIECE_PLUGIN_BUILD_PATH);
  return out;
}

Create open_plugin() {
  std::string tried;
  for (const auto& path : candidates()) {
    if (!files::exists(path)) {
      tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    const int isolate = SX_ISOLATE_SENTENCEPIECE ? RTLD_DEEPBIND : 0;  // see data/CMakeLists.txt
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | isolate);
    if (!handle) throw UserError(std::string("cannot open the sentencepiece module: ") + dlerror());
    auto create = reinterpret_cast<Create>(dlsym(handle, "sx_sentencepiece_create"));
    if (!create) throw UserError(path + ": not a siamese-xlmr sentencepiece module");
    return create;
  }
  throw UserError("cannot find the sentencepiece module " +
                  std::string(SX_SENTENCEPIECE_PLUGIN_NAME) + " (looked in: " + tried +
                  "); set SX_SENTENCEPIECE_PLUGIN to its path");
}

}  // namespace

std::unique_ptr<SentencePieceEncoder> make_sentencepiece_encoder() {
  static std::once_flag once;
  static Create create = nullptr;
  std::call_once(once, [] { create = open_plugin(); });
  return std::unique_ptr<SentencePieceEncoder>(create());
}

}  // namespace sx::data
