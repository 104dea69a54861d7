#include <cstdio>
#include <string>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "train/run_inputs.h"

namespace sx::app {

namespace {

// The value of `key` ("section.name") in config_to_yaml's output, which lists every key once
// as "section:" followed by "  name: value" lines.
std::string resolved_value(const std::string& yaml, const std::string& key) {
  const size_t dot = key.find('.');
  const std::string section = key.substr(0, dot) + ":";
  const std::string name = "  " + (dot == std::string::npos ? "" : key.substr(dot + 1)) + ": ";
  bool in_section = false;
  size_t start = 0;
  while (start < yaml.size()) {
    size_t end = yaml.find('\n', start);
    if (end == std::string::npos) end = yaml.size();
    const std::string line = yaml.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line[0] != ' ') in_section = line == section;
    if (in_section && line.compare(0, name.size(), name) == 0) return line.substr(name.size());
  }
  throw UserError("config --get: no key '" + key +
                  "' (expected section.name as listed by `siamese-xlmr config --docs`)");
}

}  // namespace

int cmd_config(const ConfigArgs& args, bool docs, const std::string& get_key, bool inputs) {
  if (docs) {
    std::fputs(config_reference_markdown().c_str(), stdout);
    return 0;
  }
  Config config = load_config(args.config_path, args.overrides);
  if (inputs) {
    // The checks' log lines (the tokenizer found in model.pretrained) on stderr, warnings only:
    // stdout is the value or YAML that scripts read.
    init_logging({0, 1, LogLevel::kWarn, LogLevel::kWarn, ""});
    check_inputs(config, {"run", "data", "tokenizer", "model", "train", "dist", "export"});
    if (files::exists(config.run.dir) && !files::is_directory(config.run.dir))
      throw UserError("run.dir: " + config.run.dir + " is a file, expected a directory");
    train::check_input_starts(config);
  }
  const std::string yaml = config_to_yaml(config);
  if (!get_key.empty()) {
    std::string value = resolved_value(yaml, get_key);
    // Scalars print bare; a quoted YAML string loses its quotes so scripts get the value.
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    std::printf("%s\n", value.c_str());
    return 0;
  }
  std::fputs(yaml.c_str(), stdout);
  return 0;
}

}  // namespace sx::app
