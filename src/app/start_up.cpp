// The start of every MPI subcommand: the configuration loaded on every rank, and the ranks'
// agreement that they run the same program on the same configuration and inputs.
#include <stdexcept>
#include <string>
#include <vector>

#include "app/commands.h"
#include "core/checksum.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "dist/deadline.h"
#include "dist/mpi_env.h"

namespace sx::app {
namespace {

// A file's identity (core/checksum.h: size and the hash of its ends, equal for copies on
// other nodes), or why it has none: ranks compare these, so a failure is a value too.
std::string fingerprint(const std::string& path) {
  if (!files::exists(path)) return "missing";
  try {
    const std::string id = file_identity(path);  // "<size>:<hash>"
    const size_t colon = id.find(':');
    return id.substr(0, colon) + " bytes, first and last MiB xxh3 " + id.substr(colon + 1);
  } catch (const std::runtime_error& e) {
    return std::string("unreadable: ") + e.what();
  }
}

// Fingerprints of the files in `dir` and in its folders one level down (an HF model
// directory: config.json, weights, a sentence-transformers module's folder).
void add_directory(dist::Items& items, const std::string& key, const std::string& dir) {
  for (const std::string& name : files::list(dir)) {
    const std::string path = files::join(dir, name);
    if (!files::is_directory(path)) {
      items.emplace_back("file " + key + "/" + name, fingerprint(path));
      continue;
    }
    for (const std::string& inner : files::list(path))
      if (!files::is_directory(files::join(path, inner)))
        items.emplace_back("file " + key + "/" + name + "/" + inner,
                           fingerprint(files::join(path, inner)));
  }
}

// What must be the same on every rank: program, resolved configuration, inputs.
dist::Items job_items(const Config& config, const std::vector<std::string>& sections) {
  dist::Items items{{"program version", program_version()}};
  for (auto& [key, value] : config_key_values(config))
    items.emplace_back("config key " + key, std::move(value));
  for (const auto& [key, path] : input_paths(config, sections)) {
    if (files::is_directory(path))
      add_directory(items, key, path);
    else
      items.emplace_back("file " + key, fingerprint(path));
  }
  return items;
}

}  // namespace

int load_job_config(const ConfigArgs& args, const std::vector<std::string>& sections,
                    const dist::MpiEnv& env, Config& config) {
  const dist::Outcome loaded = dist::attempt([&] {
    config = load_config(args.config_path, args.overrides);
    check_inputs(config, sections);
    dist::set_collective_timeout(config.dist.collective_timeout);
  });
  if (const int code = dist::agree(loaded, "the configuration"); code != kExitOk) return code;
  if (env.world == 1) return kExitOk;  // nothing to compare with
  return dist::agree_on_items(job_items(config, sections),
                              "comparison of the configuration and inputs with rank 0's");
}

int set_up_phase(const dist::MpiEnv& env, const std::string& what,
                 const std::function<void()>& phase) {
  if (env.world == 1) {
    phase();
    return kExitOk;
  }
  return dist::agree(dist::attempt(phase), what);
}

}  // namespace sx::app
