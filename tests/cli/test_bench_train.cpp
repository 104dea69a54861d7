// bench train on the tiny fixture model: it runs the trainer's step, and its JSON is sane
// (throughputs positive, the FLOP count is the reference benchmark's formula).
#include <algorithm>
#include <nlohmann/json.hpp>

#include <cmath>

#include "cli_util.h"

namespace sx {
namespace {

using test::run_cli;

TEST(BenchTrain, TinyModelJsonIsSane) {
  test::TempDir dir;
  const std::string json_path = dir.path("bench.json");
  const int64_t max_len = 32;
  auto r =
      run_cli("bench train --model " + test::fixtures_dir() +
              "/hf-tiny-xlmr/config.json --pairs 2,3 --warmup 1 --steps 2 --max-len " +
              std::to_string(max_len) + " --json " + json_path + " run.threads=1 model.device=cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("token imbalance"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(test::read_file(json_path));
  const double n_nonemb = j["n_nonemb_params"].get<double>();
  // The fixture: 2 layers of hidden 32, intermediate 64 (HF's XLMRobertaModel without pooler).
  const double h = 32, inner = 64, layers = 2;
  EXPECT_EQ(n_nonemb,
            layers * (4 * (h * h + h) + 2 * h + (h * inner + inner) + (inner * h + h) + 2 * h));
  ASSERT_EQ(j["settings"].size(), 2u);
  int64_t expected_pairs = 2;
  for (const auto& s : j["settings"]) {
    const double pairs = s["pairs_per_step"].get<double>();
    EXPECT_EQ(pairs, expected_pairs++);
    EXPECT_EQ(s["ranks"].get<int>(), 1);
    const double step_s = s["step_ms"].get<double>() / 1e3;
    EXPECT_GT(step_s, 0);
    EXPECT_NEAR(s["pairs_per_s"].get<double>(), pairs / step_s, 1e-6 * pairs / step_s);
    // Real tokens: lengths uniform in [10, max_len], so between those bounds.
    const double real = s["real_tokens_per_s"].get<double>() * step_s;
    EXPECT_GE(real, 2 * pairs * 10);
    EXPECT_LE(real, 2 * pairs * max_len);
    EXPECT_NEAR(s["padded_tokens_per_s"].get<double>() * step_s, 2 * pairs * max_len, 1e-6);
    // The reference's formula with its 128 replaced by max_len.
    const double flops =
        6 * n_nonemb * 2 * pairs * max_len + 3 * layers * 4 * (2 * pairs) * max_len * max_len * h;
    EXPECT_NEAR(s["model_tflops_per_s"].get<double>() * 1e12 * step_s, flops, 1e-6 * flops);
    EXPECT_LT(s["model_tflops_per_s_real_tokens"].get<double>(),
              s["model_tflops_per_s"].get<double>());
    for (const char* phase : {"prep_thread", "prep_wait", "h2d", "forward", "backward", "allreduce",
                              "optimizer", "host_gap"}) {
      ASSERT_TRUE(s["split_ms"].contains(phase)) << phase;
      EXPECT_GE(s["split_ms"][phase].get<double>(), 0) << phase;
    }
    EXPECT_GT(s["split_ms"]["forward"].get<double>() + s["split_ms"]["backward"].get<double>(), 0);
    EXPECT_EQ(s["token_imbalance_balanced"].get<double>(), 1.0);  // one rank
    EXPECT_TRUE(std::isfinite(s["loss"].get<double>()));
  }
}

TEST(BenchTrain, TheRetiredPaddedLayoutIsOneLineNamingPacked) {
  auto r = run_cli("bench train --model " + test::fixtures_dir() +
                   "/hf-tiny-xlmr/config.json --pairs 2 --layout padded model.device=cpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--layout packed"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(BenchTrain, BadPairsListIsOneLine) {
  auto r = run_cli("bench train --model " + test::fixtures_dir() +
                   "/hf-tiny-xlmr/config.json --pairs 4,x model.device=cpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--pairs"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sx
