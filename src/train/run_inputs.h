// What a run's results depend on beyond its configuration: the identities of its data,
// tokenizer and model files (size and a hash of the first and last MiB, so copies on other
// nodes match). A checkpoint stores them (TrainState::inputs) beside the configuration's hash,
// and a resume on other files is refused naming the one that differs.
#pragma once

#include <string>

#include "core/config.h"

namespace sx::train {

// One "name=identity" line per input, in a fixed order: data.train_csv, data.multilingual_csv,
// data.test_csv (when set), tokenizer.model, then the model: model.config, or the files of
// model.pretrained that define it (config.json, modules.json, the safetensors index and every
// .safetensors file there and one folder down) as "model.pretrained/<name>". Throws UserError
// naming an input that cannot be read.
std::string result_inputs(const Config& config);

// "" when `then` and `now` (result_inputs texts) agree, else what differs, one phrase naming
// the first input that does (e.g. "data.train_csv differs: 1234 bytes, hash ab.. in the
// checkpoint; now 1240 bytes, hash cd..").
std::string describe_inputs_change(const std::string& then, const std::string& now);

// The set-up's checks that read the start of each input alone, in an instant: the CSVs'
// headers (data::check_headers), the model's config.json, the tokenizer against it. Throws the
// set-up's UserError. (`train --force` before it moves a run aside; `config --check-inputs`.)
void check_input_starts(const Config& config);

// describe_inputs_change for tokenizer.model alone: "" when `then` records none (an earlier
// version's checkpoint) or the file the configuration names now (tokenizer_model_path).
std::string tokenizer_change(const std::string& then, const Config& config);

}  // namespace sx::train
