// Shared set-up of the predict / embed tests: synthesized Jigsaw-shaped data and a YAML config
// on the fixture tokenizer and the tiny model (written once per test binary).
#pragma once

#include "cli_util.h"
#include "core/files.h"

namespace sx::test {

struct InferenceData {
  std::string dir = files::join(files::temp_dir(), "sx-inference-" + std::to_string(::getpid()));
  std::string data = files::join(dir, "data");
  std::string run = files::join(dir, "run");
  std::string config = files::join(dir, "config.yaml");
  std::string test_csv = files::join(data, "test.csv");

  InferenceData() {
    files::remove_all(dir);
    files::create_directories(dir);
    auto r = run_cli("data synth --out " + data + " --rows 2000 --seed 3");
    if (r.exit_code != 0) throw std::runtime_error("data synth failed: " + r.err);
    // export.batch_size 16: the features are embedded in batches other than embed's, so the
    // comparisons below also cover batching.
    write_file(config, "run:\n  dir: " + run +
                           "\n  threads: 1\n"
                           "data:\n  train_csv: " +
                           files::join(data, "jigsaw-unintended-bias-train.csv") +
                           "\n  multilingual_csv: " + files::join(data, "validation.csv") +
                           "\n  test_csv: " + test_csv +
                           "\ntokenizer:\n  model: " + fixtures_dir() +
                           "/tokenizer/sentencepiece.bpe.model\n  max_len: 32\n"
                           "model:\n  pretrained: " +
                           fixtures_dir() + "/hf-tiny-xlmr\nexport:\n  batch_size: 16\n");
  }
  ~InferenceData() { files::remove_all(dir); }
};

// The rows of a .npy / features matrix compared within `tolerance`; the worst difference.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  return worst;
}

}  // namespace sx::test
