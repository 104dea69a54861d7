#include "export/embedding_settings.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "io/hdf5.h"

namespace sx::exporting {

namespace {

const char* const kMaxLen = "tokenizer.max_len";
const char* const kPretokenize = "tokenizer.pretokenize";
const char* const kKeepEos = "tokenizer.keep_eos";
const char* const kPoolLnEps = "model.pool_ln_eps";

std::string flag(bool v) {
  return v ? "true" : "false";
}

std::string number(double v, const char* format) {
  char text[40];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

}  // namespace

const std::vector<std::string>& embedding_setting_keys() {
  static const std::vector<std::string> keys{kMaxLen, kPretokenize, kKeepEos, kPoolLnEps};
  return keys;
}

EmbeddingSettings embedding_settings_of(const Config& config) {
  return {config.tokenizer.max_len, name_of(config.tokenizer.pretokenize),
          config.tokenizer.keep_eos, config.model.pool_ln_eps};
}

EmbeddingSettings read_embedding_settings(const io::H5File& f) {
  EmbeddingSettings s;
  if (f.has_attr("max_len")) s.max_len = f.attr_int("max_len");
  if (f.has_attr("pretokenize")) s.pretokenize = f.attr_string("pretokenize");
  if (f.has_attr("keep_eos")) s.keep_eos = f.attr_int("keep_eos") != 0;
  if (f.has_attr("pool_ln_eps")) s.pool_ln_eps = f.attr_double("pool_ln_eps");
  return s;
}

void write_embedding_settings(io::H5File& f, const EmbeddingSettings& s) {
  if (s.max_len) f.set_attr("max_len", *s.max_len);
  if (s.pretokenize) f.set_attr("pretokenize", *s.pretokenize);
  if (s.keep_eos) f.set_attr("keep_eos", static_cast<int64_t>(*s.keep_eos));
  if (s.pool_ln_eps) f.set_attr("pool_ln_eps", *s.pool_ln_eps);
}

nlohmann::json embedding_settings_json(const EmbeddingSettings& s) {
  nlohmann::json j = nlohmann::json::object();
  if (s.max_len) j[kMaxLen] = *s.max_len;
  if (s.pretokenize) j[kPretokenize] = *s.pretokenize;
  if (s.keep_eos) j[kKeepEos] = *s.keep_eos;
  if (s.pool_ln_eps) j[kPoolLnEps] = *s.pool_ln_eps;
  return j;
}

// A value of another type throws nlohmann::json::type_error, as any malformed JSON would.
EmbeddingSettings embedding_settings_from_json(const nlohmann::json& j) {
  EmbeddingSettings s;
  if (!j.is_object()) return s;
  if (j.contains(kMaxLen)) s.max_len = j.at(kMaxLen).get<int64_t>();
  if (j.contains(kPretokenize)) s.pretokenize = j.at(kPretokenize).get<std::string>();
  if (j.contains(kKeepEos)) s.keep_eos = j.at(kKeepEos).get<bool>();
  if (j.contains(kPoolLnEps)) s.pool_ln_eps = j.at(kPoolLnEps).get<double>();
  return s;
}

std::vector<SettingDifference> embedding_differences(const EmbeddingSettings& a,
                                                     const EmbeddingSettings& b) {
  std::vector<SettingDifference> out;
  if (a.max_len && b.max_len && *a.max_len != *b.max_len)
    out.push_back({kMaxLen, std::to_string(*a.max_len), std::to_string(*b.max_len)});
  if (a.pretokenize && b.pretokenize && *a.pretokenize != *b.pretokenize)
    out.push_back({kPretokenize, *a.pretokenize, *b.pretokenize});
  if (a.keep_eos && b.keep_eos && *a.keep_eos != *b.keep_eos)
    out.push_back({kKeepEos, flag(*a.keep_eos), flag(*b.keep_eos)});
  if (a.pool_ln_eps && b.pool_ln_eps && *a.pool_ln_eps != *b.pool_ln_eps) {
    const double x = *a.pool_ln_eps, y = *b.pool_ln_eps;
    const char* format = number(x, "%g") == number(y, "%g") ? "%.17g" : "%g";
    out.push_back({kPoolLnEps, number(x, format), number(y, format)});
  }
  return out;
}

std::string describe_differences(const std::vector<SettingDifference>& differences,
                                 const std::string& between) {
  std::string out;
  for (const SettingDifference& d : differences)
    out += (out.empty() ? "" : "; ") + d.key + " " + d.a + between + d.b;
  return out;
}

}  // namespace sx::exporting
