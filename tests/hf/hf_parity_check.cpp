// Compares our XLM-R with HF transformers' on the cases tests/hf/hf_parity.py wrote: each case
// directory is loaded as model.pretrained (encoder_factory, model/weights.h) and
// its last_hidden_state (padded rows, and packed in both CPU attention paths), pooled embedding
// and every parameter gradient of sum(embedding * R) are compared with HF's float64 values.
//
// "Relative" is per tensor in the Frobenius norm: |ours - HF| / |HF| <= 1e-5, over all of the
// tensor's elements (the padded hidden states include the pad positions, which HF computes too).
// An attention key bias has a zero gradient in exact arithmetic (softmax ignores a shift shared
// by all keys of a query), so its float32 rounding noise is measured against its layer's
// key-weight gradient instead.
//
// Usage: hf_parity_check DIR    prints one line per check; exit 0 all pass, 1 a mismatch.
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "core/config.h"
#include "core/files.h"
#include "model/encoder_factory.h"
#include "model/weights.h"
#include "model/xlmr.h"

namespace sx {
namespace {

constexpr double kTolerance = 1e-5;
const char* const kPoolLnEps = "model.pool_ln_eps=1e-3";  // hf_parity.py's POOL_LN_EPS

double relative_error(const torch::Tensor& ours, const torch::Tensor& want,
                      const torch::Tensor& scale) {
  const double norm = scale.to(torch::kDouble).norm().item<double>();
  const double err = (ours.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>();
  return norm > 0 ? err / norm : err;
}

// Counts and prints the failures of one case.
class Report {
 public:
  explicit Report(std::string case_name) : case_(std::move(case_name)) {}

  void check(const std::string& what, double error) {
    const bool ok = error <= kTolerance;
    if (!ok) {
      ++failures_;
      std::printf("%s: FAIL %s: relative error %.3g > %.0e\n", case_.c_str(), what.c_str(), error,
                  kTolerance);
    }
    if (error > worst_) {
      worst_ = error;
      worst_what_ = what;
    }
  }
  void fail(const std::string& what) {
    ++failures_;
    std::printf("%s: FAIL %s\n", case_.c_str(), what.c_str());
  }
  int finish(size_t checks) const {
    std::printf("%s: %s, %zu tensors, worst relative error %.3g (%s)\n", case_.c_str(),
                failures_ ? "FAILED" : "ok", checks, worst_, worst_what_.c_str());
    return failures_;
  }

 private:
  std::string case_;
  int failures_ = 0;
  double worst_ = 0;
  std::string worst_what_ = "-";
};

// The parameter whose gradient scales a key bias's rounding noise (see the file's comment).
std::string gradient_scale_name(const std::string& name) {
  const std::string key_bias = "attention.self.key.bias";
  if (name.size() > key_bias.size() &&
      name.compare(name.size() - key_bias.size(), key_bias.size(), key_bias) == 0)
    return name.substr(0, name.size() - 4) + "weight";
  return name;
}

// Packed forward and backward in one CPU attention path; returns how many tensors it compared.
size_t check_packed(model::SiameseEncoder& model, std::map<std::string, torch::Tensor>& ref,
                    bool pad_inside, Report& report) {
  model::ComputeOptions compute;
  compute.pad_inside_attention = pad_inside;
  model->set_compute(compute);
  const std::string path = pad_inside ? " (packed, padded inside attention)" : " (packed)";
  const torch::Tensor& ids = ref.at("input_ids");
  const int64_t pad = model->config().pad_token_id;
  const model::PackedIds packed = model::pack_padded(ids, pad);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor want = ref.at("last_hidden_state").index({ids.ne(pad)});
    report.check("last_hidden_state" + path,
                 relative_error(model->hidden_states(packed), want, want));
  }
  model->zero_grad();
  torch::Tensor embedding = model->forward(packed);
  report.check("embedding" + path,
               relative_error(embedding.detach(), ref.at("embedding"), ref.at("embedding")));
  (embedding * ref.at("loss_weights").to(torch::kFloat)).sum().backward();
  size_t checked = 2, gradients = 0;
  for (auto& [name, p] : model::named_parameters(*model)) {
    auto want = ref.find("grad." + name);
    if (want == ref.end()) {
      report.fail("HF has no gradient for " + name);
      continue;
    }
    ++gradients;
    if (!p.grad().defined()) {
      report.fail("no gradient for " + name + path);
      continue;
    }
    const torch::Tensor& scale = ref.at("grad." + gradient_scale_name(name));
    report.check("grad " + name + path, relative_error(p.grad(), want->second, scale));
  }
  size_t hf_gradients = 0;
  for (const auto& entry : ref) hf_gradients += entry.first.rfind("grad.", 0) == 0;
  if (gradients != hf_gradients)
    report.fail("HF has " + std::to_string(hf_gradients) + " gradients, we compared " +
                std::to_string(gradients));
  return checked + gradients;
}

// Returns the number of failed checks of one case directory.
int check_case(const std::string& dir) {
  Report report(dir.substr(dir.rfind('/') + 1));
  // As embed and train build it: model.pretrained = the directory (config.json,
  // model.safetensors, the pooling LayerNorm from modules.json's 2_LayerNorm/).
  const Config config = load_config("", {"model.pretrained=" + dir, kPoolLnEps});
  model::SiameseEncoder model = model::build_encoder(config).encoder;
  model->eval();
  auto ref = model::read_safetensors(files::join(dir, "expected.safetensors"), torch::kDouble);
  size_t checks = 1;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor& want = ref.at("last_hidden_state");
    report.check("last_hidden_state (padded)",
                 relative_error(model->hidden_states(ref.at("input_ids")), want, want));
  }
  checks += check_packed(model, ref, false, report);
  checks += check_packed(model, ref, true, report);
  return report.finish(checks);
}

}  // namespace
}  // namespace sx

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR   (the cases tests/hf/hf_parity.py wrote)\n", argv[0]);
    return 2;
  }
  torch::set_num_threads(1);
  int failures = 0, cases = 0;
  try {
    for (const std::string& name : sx::files::list(argv[1])) {
      const std::string dir = sx::files::join(argv[1], name);
      if (name.rfind("case_", 0) != 0 || !sx::files::is_directory(dir)) continue;
      failures += sx::check_case(dir);
      ++cases;
    }
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("%d cases, %d failed checks\n", cases, failures);
  return cases > 0 && failures == 0 ? 0 : 1;
}
