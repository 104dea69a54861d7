// `siamese-xlmr embed` on the fixture model directory (no pooling LayerNorm there, so it
// starts at 1/0) must reproduce LayerNorm(masked mean of HF's last_hidden_state).
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "model/weights.h"

namespace sx::model {
namespace {

TEST(EmbedCli, ReproducesTheForwardFixtureEmbeddings) {
  auto ref = read_safetensors(test::fixtures_dir() + "/hf-tiny-xlmr/forward_ref.safetensors");
  auto tok = nlohmann::json::parse(
      test::read_file(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json"));
  std::string input;
  for (int i = 0; i < 12; ++i) input += tok["cases"][i]["text"].get<std::string>() + "\n";

  torch::Tensor mask = ref["attention_mask"].to(torch::kFloat).unsqueeze(-1);
  torch::Tensor mean = (ref["last_hidden_state"] * mask).sum(1) / mask.sum(1);
  torch::Tensor want = torch::layer_norm(mean, {mean.size(1)}, {}, {}, 1e-3);

  auto r = test::run_cli("embed model.pretrained=" + test::fixtures_dir() +
                             "/hf-tiny-xlmr tokenizer.model=" + test::fixtures_dir() +
                             "/tokenizer/sentencepiece.bpe.model tokenizer.keep_eos=false",
                         input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream out(r.out);
  std::string line;
  int row = 0;
  while (std::getline(out, line)) {
    std::istringstream values(line);
    double v;
    int col = 0;
    while (values >> v) {
      ASSERT_LT(col, 32);
      EXPECT_NEAR(v, want[row][col].item<double>(), 1e-5) << row << "," << col;
      ++col;
    }
    EXPECT_EQ(col, 32);
    ++row;
  }
  EXPECT_EQ(row, 12);
}

}  // namespace
}  // namespace sx::model
