#include "export/hf_export.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "export/embedding_settings.h"
#include "export/features.h"
#include "model/weights.h"

namespace sx::exporting {
namespace {

using json = nlohmann::ordered_json;

// dir/name among the files of the directory, with `text`.
void add_text(files::FileSet& out, const std::string& dir, const std::string& name,
              std::string text) {
  out.add(files::join(dir, name),
          [text = std::move(text)](const std::string& tmp) { files::write_file(tmp, text); });
}

void add_tensors(files::FileSet& out, const std::string& dir, const std::string& name,
                 std::map<std::string, torch::Tensor> tensors) {
  out.add(files::join(dir, name), [tensors = std::move(tensors)](const std::string& tmp) {
    model::write_safetensors(tmp, tensors);
  });
}

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw UserError("export-hf: cannot read the tokenizer model " + path + ": " +
                    std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json special_tokens() {
  return {{"bos_token", "<s>"},    {"eos_token", "</s>"},  {"unk_token", "<unk>"},
          {"sep_token", "</s>"},   {"pad_token", "<pad>"}, {"cls_token", "<s>"},
          {"mask_token", "<mask>"}};
}

// sentence-transformers: Transformer -> mean Pooling -> LayerNorm, each a module directory.
void add_sentence_transformers(files::FileSet& out, const std::string& dir, int64_t hidden,
                               int64_t max_len,
                               const std::map<std::string, torch::Tensor>& pool_ln) {
  json modules = json::array();
  modules.push_back({{"idx", 0},
                     {"name", "0"},
                     {"path", ""},
                     {"type", "sentence_transformers.models.Transformer"}});
  modules.push_back({{"idx", 1},
                     {"name", "1"},
                     {"path", "1_Pooling"},
                     {"type", "sentence_transformers.models.Pooling"}});
  modules.push_back({{"idx", 2},
                     {"name", "2"},
                     {"path", "2_LayerNorm"},
                     {"type", "sentence_transformers.models.LayerNorm"}});
  add_text(out, dir, "modules.json", modules.dump(2) + "\n");
  add_text(out, dir, "sentence_bert_config.json",
           json{{"max_seq_length", max_len}, {"do_lower_case", false}}.dump(2) + "\n");
  json pooling{{"word_embedding_dimension", hidden},
               {"pooling_mode_cls_token", false},
               {"pooling_mode_mean_tokens", true},
               {"pooling_mode_max_tokens", false},
               {"pooling_mode_mean_sqrt_len_tokens", false},
               {"pooling_mode_weightedmean_tokens", false},
               {"pooling_mode_lasttoken", false},
               {"include_prompt", true}};
  add_text(out, dir, "1_Pooling/config.json", pooling.dump(2) + "\n");
  add_text(out, dir, "2_LayerNorm/config.json", json{{"dimension", hidden}}.dump(2) + "\n");
  add_tensors(
      out, dir, "2_LayerNorm/model.safetensors",
      {{"norm.weight", pool_ln.at("pool_ln.weight")}, {"norm.bias", pool_ln.at("pool_ln.bias")}});
}

// The table of an evaluation.json that scored these weights.
std::string table_of(const json& evaluation) {
  auto row = [](const json& fold, const char* key) {
    if (!fold.contains(key)) return std::string("-");
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", fold[key].get<double>());
    return std::string(b);
  };
  std::string out =
      "Per-language ROC-AUC of the final classifier on the exported embeddings (train on the other "
      "languages, test on this one):\n\n| language | logistic regression | class centroids |"
      " before training (logistic) |\n| --- | --- | --- | --- |\n";
  const json& after = evaluation.value("after", json::object());
  const json& before = evaluation.value("before", json::object());
  for (const auto& fold : after.value("folds", json::array())) {
    std::string prior = "-";
    for (const auto& b : before.value("folds", json::array()))
      if (b.value("language", "") == fold.value("language", ""))
        prior = row(b, "auc_logistic_regression");
    out += "| " + fold.value("language", std::string("?")) + " | " +
           row(fold, "auc_logistic_regression") + " | " + row(fold, "auc_centroid") + " | " +
           prior + " |\n";
  }
  return out;
}

// How the settings that evaluation.json's features were embedded with (its "embedding", from
// the features' attributes) differ from the directory's: "tokenizer.max_len 16, not 64"; ""
// when they agree or were not recorded (an earlier siamese-xlmr).
std::string embedding_difference(const json& after, const HfExportInputs& in) {
  const EmbeddingSettings ours{in.max_len, name_of(in.pretokenize), in.keep_eos, in.pool_ln_eps};
  const nlohmann::json theirs(after.value("embedding", json()));  // from ordered_json
  return describe_differences(embedding_differences(embedding_settings_from_json(theirs), ours),
                              ", not ");
}

// The run's evaluation (evaluation.json of `evaluate`) as a Markdown table, or a note: none when
// its "after" scored the features of other weights than these (`evaluate features_before.h5`,
// an export of another checkpoint, a best.h5 a continued run rewrote) or does not say which,
// or features embedded with other settings than the directory's (an export with another
// tokenizer.max_len). The checkpoint's content decides where the evaluation recorded it (a run
// directory copied or moved keeps its table); older evaluations are matched by the file's path.
std::string evaluation_table(const HfExportInputs& in) {
  const std::string& path = in.evaluation_json;
  const std::string& weights = in.weights_path;
  if (path.empty() || !files::exists(path)) return "No evaluation was found next to the weights.\n";
  try {
    std::ifstream file(path);
    const json j = json::parse(file);
    const json& after = j.at("after");
    const std::string model = after.value("model", std::string());
    if (model.empty())
      return "The run's evaluation.json does not say which weights it scored (an earlier "
             "siamese-xlmr wrote it), so its table is left out: `siamese-xlmr evaluate "
             "RUN_DIR/features.h5` writes it again.\n";
    const std::string redo =
        ", so its table is left out: `siamese-xlmr export --config C "
        "--checkpoint " +
        weights +
        " --force`, then `siamese-xlmr evaluate RUN_DIR/features.h5`, "
        "scores these weights.\n";
    const json& scored = after.value("model_xxh3", json());
    const auto match =
        match_weights(model, scored.is_string() ? scored.get<std::string>() : "", weights);
    switch (match.kind) {
      case WeightsMatch::kSame:
        if (const std::string differs = embedding_difference(after, in); !differs.empty())
          return "The run's evaluation.json scored features of these weights embedded with other "
                 "settings than this directory's (" +
                 differs + "), so its table is left out: `siamese-xlmr export --config C " +
                 "--checkpoint " + weights +
                 " --force` with the training's settings, then `siamese-xlmr evaluate "
                 "RUN_DIR/features.h5`, scores this model.\n";
        return table_of(j);
      case WeightsMatch::kChanged:
        return "The run's evaluation.json scored the features of " + weights +
               " as it was then (XXH3 " + scored.get<std::string>() +
               "), and the file has changed since" + redo;
      case WeightsMatch::kOther:
        return "The run's evaluation.json scored the features of " + model + ", not these weights" +
               redo;
      case WeightsMatch::kUnknown:
        break;
    }
    return "The weights could not be read back to match the run's evaluation, so its table is "
           "left out.\n";
  } catch (const json::exception&) {
    return "The run's evaluation.json could not be read.\n";
  }
}

std::string model_card(const HfExportInputs& in, const model::XlmrConfig& config) {
  char eps[32];
  std::snprintf(eps, sizeof eps, "%g", in.pool_ln_eps);
  std::ostringstream s;
  s << "---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n"
       "- xlm-roberta\n- siamese-xlmr\n- toxicity\n---\n\n"
       "# Siamese XLM-R encoder (siamese-xlmr)\n\n"
       "An XLM-RoBERTa encoder fine-tuned as a Siamese network with a distance-based logistic loss "
       "(the Jigsaw multilingual toxic-comment approach). Text embedding = LayerNorm(mean of the "
       "last hidden states over the real tokens).\n\n"
       "Weights: "
    << in.weights_description << "; " << config.num_hidden_layers << " layers, hidden size "
    << config.hidden_size << ", stored as " << in.dtype
    << ".\n\n## Use\n\n```python\nfrom transformers import AutoModel, AutoTokenizer\n"
       "model = AutoModel.from_pretrained(DIR)          # XLMRobertaModel\n"
       "tokenizer = AutoTokenizer.from_pretrained(DIR)\n\n"
       "from sentence_transformers import SentenceTransformer\n"
       "st = SentenceTransformer(DIR)                  # Transformer -> mean Pooling -> LayerNorm\n"
       "st[2].norm.eps = "
    << eps
    << "                         # see below\nembeddings = st.encode([\"a comment\"])\n```\n\n"
       "`siamese-xlmr embed --pretrained model.pretrained=DIR tokenizer.model=DIR/"
       "sentencepiece.bpe.model tokenizer.max_len="
    << in.max_len << " tokenizer.keep_eos=" << (in.keep_eos ? "true" : "false")
    << " tokenizer.pretokenize=" << name_of(in.pretokenize) << " model.pool_ln_eps=" << eps
    << "` reads this directory back, tokenizing and pooling as the training did (the pooling "
       "LayerNorm from `2_LayerNorm/`).\n\n## What Python tools do not reproduce by themselves\n\n"
       "- **Pooling LayerNorm epsilon**: training used "
    << eps << (in.pool_ln_eps == 1e-3 ? " (Keras' default)" : " (Keras' default is 0.001)")
    << "; sentence-transformers' LayerNorm module is built with PyTorch's 1e-5. "
       "Set `st[2].norm.eps` as above for identical embeddings.\n"
       "- **Tokenization**: "
    << (in.pretokenize == Pretokenize::kWordpunct
            ? "the texts were split into words first as NLTK's `wordpunct_tokenize` does "
              "(`\\w+|[^\\w\\s]+`) and each word encoded on its own; HF's tokenizer encodes the "
              "whole text, which differs where sentencepiece would merge across a word "
              "boundary. For identical ids, pre-split the same way."
            : "the whole text is encoded with sentencepiece, as HF's tokenizer does.")
    << "\n- **Length**: sequences were cut to " << in.max_len << " tokens"
    << (in.keep_eos ? ", keeping `</s>` at the end of a cut sequence."
                    : "; a cut sequence has no `</s>` (the notebook's `tokenize_all`).")
    << "\n\n## Evaluation\n\n"
    << evaluation_table(in);
  return s.str();
}

}  // namespace

std::vector<std::string> files_loaded_with_an_export(const std::string& dir) {
  std::vector<std::string> found;
  for (const char* name :
       {"tokenizer.json", "added_tokens.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
        "model.safetensors.index.json", "tf_model.h5", "flax_model.msgpack", "adapter_config.json",
        "adapter_model.safetensors", "adapter_model.bin", "config_sentence_transformers.json"})
    if (files::exists(files::join(dir, name))) found.emplace_back(name);
  return found;
}

std::string hf_config_json(const model::XlmrConfig& c, const std::string& dtype) {
  json j{{"architectures", {"XLMRobertaModel"}},
         {"model_type", "xlm-roberta"},
         {"vocab_size", c.vocab_size},
         {"hidden_size", c.hidden_size},
         {"num_hidden_layers", c.num_hidden_layers},
         {"num_attention_heads", c.num_attention_heads},
         {"intermediate_size", c.intermediate_size},
         {"hidden_act", "gelu"},
         {"hidden_dropout_prob", c.hidden_dropout_prob},
         {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
         {"max_position_embeddings", c.max_position_embeddings},
         {"type_vocab_size", c.type_vocab_size},
         {"initializer_range", c.initializer_range},
         {"layer_norm_eps", c.layer_norm_eps},
         {"pad_token_id", c.pad_token_id},
         {"bos_token_id", 0},
         {"eos_token_id", 2},
         {"position_embedding_type", "absolute"},
         {"torch_dtype", dtype == "bf16" ? "bfloat16" : "float32"}};
  return j.dump(2) + "\n";
}

void export_hf(model::SiameseEncoderImpl& model, const HfExportInputs& in) {
  if (in.dtype != "fp32" && in.dtype != "bf16")
    throw UserError("export-hf: --dtype " + in.dtype + " (expected fp32 or bf16)");
  std::map<std::string, torch::Tensor> encoder, pool_ln;
  for (auto& [name, t] : model::named_parameters(model)) {
    torch::Tensor cpu = t.detach().to(torch::kCPU);
    if (name.rfind("pool_ln.", 0) == 0)
      pool_ln[name] = cpu.to(torch::kFloat);  // tiny: always fp32
    else
      encoder[name] = cpu.to(in.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat);
  }
  const int64_t hidden = model.config().hidden_size;
  const size_t tensors = encoder.size();
  // Every file is written before any appears: a failure leaves no part of the directory.
  files::FileSet out(files::FileSet::Parents::kCreate, in.overwrite
                                                           ? files::FileSet::Replace::kAllowed
                                                           : files::FileSet::Replace::kRefuse);
  add_text(out, in.out_dir, "config.json", hf_config_json(model.config(), in.dtype));
  add_tensors(out, in.out_dir, "model.safetensors", std::move(encoder));
  add_text(out, in.out_dir, "sentencepiece.bpe.model", read_binary(in.tokenizer_model));
  json tokenizer_config = special_tokens();
  tokenizer_config["tokenizer_class"] = "XLMRobertaTokenizer";
  tokenizer_config["model_max_length"] = in.max_len;
  add_text(out, in.out_dir, "tokenizer_config.json", tokenizer_config.dump(2) + "\n");
  add_text(out, in.out_dir, "special_tokens_map.json", special_tokens().dump(2) + "\n");
  add_sentence_transformers(out, in.out_dir, hidden, in.max_len, pool_ln);
  add_text(out, in.out_dir, "README.md", model_card(in, model.config()));
  try {
    out.commit();
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("export-hf: ") + e.what());
  }
  spdlog::info("export-hf: {} ({} tensors, {}; sentence-transformers modules; model card)",
               in.out_dir, tensors, in.dtype);
}

}  // namespace sx::exporting
