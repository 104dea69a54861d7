#include "model/weights.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/strings.h"
#include "model/safetensors.h"

namespace sx::model {
namespace {

torch::Dtype torch_dtype(StDtype dtype, const std::string& what) {
  switch (dtype) {
    case StDtype::kF64:
      return torch::kDouble;
    case StDtype::kF32:
      return torch::kFloat;
    case StDtype::kF16:
      return torch::kHalf;
    case StDtype::kBF16:
      return torch::kBFloat16;
    case StDtype::kI64:
      return torch::kLong;
    case StDtype::kI32:
      return torch::kInt;
    case StDtype::kI16:
      return torch::kShort;
    case StDtype::kI8:
      return torch::kChar;
    case StDtype::kU8:
      return torch::kByte;
    case StDtype::kBool:
      return torch::kBool;
  }
  throw UserError(what + ": unsupported dtype");
}

StDtype st_dtype(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kDouble:
      return StDtype::kF64;
    case torch::kFloat:
      return StDtype::kF32;
    case torch::kHalf:
      return StDtype::kF16;
    case torch::kBFloat16:
      return StDtype::kBF16;
    case torch::kLong:
      return StDtype::kI64;
    case torch::kInt:
      return StDtype::kI32;
    default:
      throw std::invalid_argument("write_safetensors: unsupported dtype");
  }
}

bool is_float(StDtype d) {
  return d == StDtype::kF64 || d == StDtype::kF32 || d == StDtype::kF16 || d == StDtype::kBF16;
}

std::string shape_text(at::IntArrayRef shape) {
  std::vector<std::string> dims;
  for (auto d : shape) dims.push_back(std::to_string(d));
  return "[" + join(dims, ", ") + "]";
}

}  // namespace

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path, torch::Dtype dtype) {
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : file.tensors()) {
    std::vector<char> bytes = file.read(name);
    torch::Tensor raw = torch::from_blob(
        bytes.data(), info.shape, torch::TensorOptions().dtype(torch_dtype(info.dtype, path)));
    out[name] = is_float(info.dtype) ? raw.to(dtype).clone() : raw.clone();
  }
  return out;
}

void write_safetensors(const std::string& path,
                       const std::map<std::string, torch::Tensor>& tensors) {
  std::map<std::string, torch::Tensor> contiguous;
  std::map<std::string, StTensorData> data;
  for (const auto& [name, t] : tensors) {
    contiguous[name] = t.detach().to(torch::kCPU).contiguous();
    const auto& c = contiguous[name];
    data[name] = {st_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr()};
  }
  model::write_safetensors(path, data);
}

std::map<std::string, torch::Tensor> named_parameters(SiameseEncoderImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value();
  return out;
}

LoadReport load_state(SiameseEncoderImpl& model,
                      const std::map<std::string, torch::Tensor>& tensors,
                      const std::string& what) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters(model);
  std::vector<std::string> unexpected, misshaped;
  std::set<std::string> seen;  // loaded or reported: not missing
  LoadReport report;
  for (const auto& [file_name, tensor] : tensors) {
    std::string name = starts_with(file_name, "roberta.") ? file_name.substr(8) : file_name;
    if (starts_with(name, "lm_head.") || starts_with(name, "pooler.") ||
        name == "embeddings.position_ids" || name == "embeddings.token_type_ids") {
      ++report.tensors_ignored;
      continue;
    }
    auto it = params.find(name);
    if (it == params.end()) {
      unexpected.push_back(file_name);
      continue;
    }
    if (tensor.sizes() != it->second.sizes()) {
      misshaped.push_back(name + " (file " + shape_text(tensor.sizes()) + ", model " +
                          shape_text(it->second.sizes()) + ")");
      seen.insert(name);
      continue;
    }
    it->second.copy_(tensor.to(it->second.dtype()));
    seen.insert(name);
    ++report.tensors_loaded;
  }
  std::vector<std::string> missing;
  for (const auto& [name, p] : params) {
    if (seen.count(name)) continue;
    if (starts_with(name, "pool_ln.")) {  // the notebook's LayerNorm starts at 1/0
      p.copy_(name == "pool_ln.weight" ? torch::ones_like(p) : torch::zeros_like(p));
      continue;
    }
    missing.push_back(name);
  }
  report.pool_ln_from_file = seen.count("pool_ln.weight") > 0;
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::vector<std::string> first(v.begin(), v.begin() + std::min<size_t>(v.size(), 4));
      return join(first, ", ") + (v.size() > 4 ? ", ..." : "");
    };
    std::vector<std::string> parts;
    if (!missing.empty())
      parts.push_back(std::to_string(missing.size()) + " missing (" + list(missing) + ")");
    if (!unexpected.empty())
      parts.push_back(std::to_string(unexpected.size()) + " unexpected (" + list(unexpected) + ")");
    if (!misshaped.empty())
      parts.push_back(std::to_string(misshaped.size()) + " mis-shaped (" + list(misshaped) + ")");
    throw UserError(what +
                    ": the weights do not fit the model of its config.json: " + join(parts, "; "));
  }
  return report;
}

namespace {

// A sentence-transformers directory (modules.json) keeps the pooling LayerNorm in its own
// module folder as norm.weight / norm.bias: returned as pool_ln.*, or empty when there is none.
std::map<std::string, torch::Tensor> sentence_transformers_pool_ln(const std::string& model_dir) {
  const std::string modules = files::join(model_dir, "modules.json");
  if (!files::exists(modules)) return {};
  nlohmann::json j;
  try {
    std::ifstream in(modules);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(modules + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_array()) throw UserError(modules + ": expected a JSON array of modules");
  for (const auto& m : j) {
    if (!m.is_object() || m.value("type", "") != "sentence_transformers.models.LayerNorm") continue;
    const std::string path = m.value("path", "");
    if (path.empty() || path.find('/') != std::string::npos || path.find("..") != std::string::npos)
      throw UserError(modules + ": the LayerNorm module's path '" + path +
                      "' must be a plain folder name");
    auto norm = read_safetensors(files::join(files::join(model_dir, path), "model.safetensors"));
    std::map<std::string, torch::Tensor> out;
    for (const char* part : {"weight", "bias"}) {
      auto it = norm.find(std::string("norm.") + part);
      if (it == norm.end())
        throw UserError(files::join(model_dir, path) + "/model.safetensors: missing norm." + part);
      out[std::string("pool_ln.") + part] = it->second;
    }
    return out;
  }
  return {};
}

std::map<std::string, torch::Tensor> read_encoder_weights(const std::string& model_dir) {
  const std::string single = files::join(model_dir, "model.safetensors");
  const std::string index = files::join(model_dir, "model.safetensors.index.json");
  if (files::exists(single)) return read_safetensors(single);
  if (!files::exists(index))
    throw UserError("model.pretrained: " + model_dir +
                    " holds neither model.safetensors nor model.safetensors.index.json");
  nlohmann::json j;
  try {
    std::ifstream in(index);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(index + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw UserError(index + ": missing the 'weight_map' object");
  std::map<std::string, std::set<std::string>> by_file;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string())
      throw UserError(index + ": weight_map['" + it.key() + "'] is not a file name");
    const std::string file = it->get<std::string>();
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw UserError(index + ": shard name '" + file + "' must be a plain file name");
    by_file[file].insert(it.key());
  }
  std::map<std::string, torch::Tensor> out;
  for (const auto& [file, names] : by_file) {
    auto shard = read_safetensors(files::join(model_dir, file));
    for (const auto& name : names) {
      auto it = shard.find(name);
      if (it == shard.end()) throw UserError(index + ": '" + name + "' is not in shard " + file);
      out[name] = it->second;
    }
  }
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> read_hf_weights(const std::string& model_dir) {
  auto out = read_encoder_weights(model_dir);
  for (auto& [name, t] : sentence_transformers_pool_ln(model_dir)) out[name] = t;
  return out;
}

}  // namespace sx::model
