#include "train/run_inputs.h"

#include <map>
#include <sstream>
#include <vector>

#include "core/checksum.h"
#include "core/error.h"
#include "core/files.h"
#include "data/datasets.h"
#include "model/encoder_factory.h"

namespace sx::train {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The files of an HF model directory that define the model, relative to it, sorted.
std::vector<std::string> model_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& name : files::list(dir)) {
    const std::string path = files::join(dir, name);
    if (files::is_directory(path)) {
      for (const auto& inner : files::list(path))
        if (ends_with(inner, ".safetensors")) out.push_back(name + "/" + inner);
    } else if (name == "config.json" || name == "modules.json" ||
               name == "model.safetensors.index.json" || ends_with(name, ".safetensors")) {
      out.push_back(name);
    }
  }
  return out;
}

std::string identity_line(const std::string& name, const std::string& path) {
  try {
    return name + "=" + file_identity(path) + "\n";
  } catch (const std::exception& e) {
    throw UserError(name + ": " + e.what());
  }
}

std::map<std::string, std::string> parse(const std::string& text, std::vector<std::string>& order) {
  std::map<std::string, std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = line.substr(0, eq);
    if (out.emplace(name, line.substr(eq + 1)).second) order.push_back(name);
  }
  return out;
}

// "1234 bytes, hash ab.." from "1234:ab..", or "none".
std::string readable(const std::string& identity) {
  if (identity.empty()) return "none";
  const auto colon = identity.find(':');
  if (colon == std::string::npos) return identity;
  return identity.substr(0, colon) + " bytes, hash " + identity.substr(colon + 1);
}

}  // namespace

std::string result_inputs(const Config& config) {
  std::string text = identity_line("data.train_csv", config.data.train_csv) +
                     identity_line("data.multilingual_csv", config.data.multilingual_csv);
  if (!config.data.test_csv.empty()) text += identity_line("data.test_csv", config.data.test_csv);
  text += identity_line("tokenizer.model", data::tokenizer_model_path(config));
  if (!config.model.pretrained.empty()) {
    for (const auto& name : model_files(config.model.pretrained))
      text += identity_line("model.pretrained/" + name, files::join(config.model.pretrained, name));
  } else {
    text += identity_line("model.config", config.model.config);
  }
  return text;
}

std::string describe_inputs_change(const std::string& then, const std::string& now) {
  std::vector<std::string> order;
  const auto a = parse(then, order), b = parse(now, order);
  for (const auto& name : order) {
    const auto in_a = a.find(name), in_b = b.find(name);
    const std::string x = in_a == a.end() ? "" : in_a->second;
    const std::string y = in_b == b.end() ? "" : in_b->second;
    if (x != y) return name + " differs: " + readable(x) + " in the checkpoint; now " + readable(y);
  }
  return "";
}

void check_input_starts(const Config& config) {
  data::check_headers(config, /*with_test=*/true);
  const data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  model::check_tokenizer_fits(config, model::read_model_config(config), tokenizer.vocab_size());
}

std::string tokenizer_change(const std::string& then, const Config& config) {
  const std::string name = "tokenizer.model";
  std::vector<std::string> order;
  const auto recorded = parse(then, order);
  const auto it = recorded.find(name);
  if (it == recorded.end()) return "";
  return describe_inputs_change(name + "=" + it->second,
                                identity_line(name, data::tokenizer_model_path(config)));
}

}  // namespace sx::train
