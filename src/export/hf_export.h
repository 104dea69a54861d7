// The trained encoder as an HF transformers model directory that is also a sentence-transformers
// model: config.json + model.safetensors (HF names) + the sentencepiece tokenizer files, and
// modules.json with Transformer -> mean Pooling -> LayerNorm (the pooling LayerNorm's weights in
// 2_LayerNorm/). `model.pretrained: DIR` reads such a directory back, pooling LayerNorm included.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "model/xlmr.h"

namespace sx::exporting {

struct HfExportInputs {
  std::string out_dir;
  std::string dtype = "fp32";   // fp32 | bf16 (weights in model.safetensors)
  std::string tokenizer_model;  // the sentencepiece model to ship (sentencepiece.bpe.model)
  int64_t max_len = 128;        // tokenizer.max_len
  Pretokenize pretokenize = Pretokenize::kWordpunct;  // tokenizer.pretokenize
  bool keep_eos = false;                              // tokenizer.keep_eos
  double pool_ln_eps = 1e-3;                          // model.pool_ln_eps
  std::string weights_description;  // where the weights came from (checkpoint path)
  std::string weights_path;         // the checkpoint exported
  std::string evaluation_json;      // run.dir/evaluation.json when there is one, else ""
  // --force: replace the directory's files. Without it a file that appears while they are
  // written (another export-hf into the same --out) ends this one, its files all the other's.
  bool overwrite = false;
};

// Writes the directory (created with its subdirectories when missing; files of an existing
// one replaced, others kept), every file written before any of them appears (files::FileSet):
// a failure (a full disk) leaves no part of the new directory. Throws UserError, with the
// system's reason, when a file cannot be written or the tokenizer model cannot be read.
void export_hf(model::SiameseEncoderImpl& model, const HfExportInputs& inputs);

// Files in `dir` that export_hf does not write but transformers or sentence-transformers would
// read with its files: a fast tokenizer (tokenizer.json, taken before sentencepiece.bpe.model),
// added tokens, other or sharded weights, an adapter, sentence-transformers' prompts. An
// export into a directory that keeps one of them would not load as the weights exported.
std::vector<std::string> files_loaded_with_an_export(const std::string& dir);

// The HF config.json of `config` (XLMRobertaModel).
std::string hf_config_json(const model::XlmrConfig& config, const std::string& dtype);

}  // namespace sx::exporting
