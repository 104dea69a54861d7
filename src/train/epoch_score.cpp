#include "train/epoch_score.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "encode/encode_texts.h"
#include "evaluate/scores.h"

namespace sx::train {

CentroidAuc epoch_centroid_auc(model::SiameseEncoder& model, const data::XlmrTokenizer& tokenizer,
                               const data::LabeledCorpus& labeled, size_t batch_size,
                               const dist::MpiEnv& env) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = labeled.size();
  const size_t begin = n * env.rank / env.world, end = n * (env.rank + 1) / env.world;
  std::vector<float> local = encode::encode_texts(model, tokenizer, labeled.texts.views(), begin,
                                                  end, batch_size, /*progress=*/false, "");
  std::vector<float> x = dist::gather(local, 0, "gather of the epoch's embeddings");
  CentroidAuc out;
  if (env.rank != 0 || n == 0) return out;
  const int64_t cols = static_cast<int64_t>(x.size() / n);
  const std::vector<int> labels(labeled.labels.begin(), labeled.labels.end());
  out.by_language = evaluate::centroid_auc_by_language(x, labels, labeled.langs.strings(), cols);
  double sum = 0;
  int scored = 0;
  for (const auto& [language, auc] : out.by_language)
    if (!std::isnan(auc)) sum += auc, ++scored;
  out.mean = scored ? sum / scored : std::nan("");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::string auc_text(const CentroidAuc& auc) {
  char b[64];
  std::snprintf(b, sizeof b, "%.4f (", auc.mean);
  std::string out = b;
  for (size_t i = 0; i < auc.by_language.size(); ++i) {
    std::snprintf(b, sizeof b, "%s%s %.4f", i ? ", " : "", auc.by_language[i].first.c_str(),
                  auc.by_language[i].second);
    out += b;
  }
  std::snprintf(b, sizeof b, ") in %.1f s", auc.seconds);
  return out + b;
}

}  // namespace sx::train
