// bench data: CSV loading and tokenization throughput on a synthesized Jigsaw-sized file.
// Speed targets live here and in tools/, never in timed tests.
#include <chrono>
#include <cstdio>

#include "app/commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/parallel.h"
#include "data/jigsaw.h"
#include "data/synth.h"
#include "data/tokenizer.h"

namespace sx::app {

int cmd_bench_data(const BenchDataArgs& a) {
  using Clock = std::chrono::steady_clock;
  init_logging({0, 1, "warn", "warn", ""});
  const std::string csv = files::join(a.dir, "jigsaw-unintended-bias-train.csv");
  if (!files::exists(csv)) {
    std::printf("synthesizing %lld rows into %s ...\n", a.rows, a.dir.c_str());
    data::write_synthetic_jigsaw(a.dir, static_cast<size_t>(a.rows), 1);
  }
  const double mb = static_cast<double>(files::size(csv)) / (1 << 20);

  auto t0 = Clock::now();
  data::LoadOptions options;
  options.key = "bench";
  data::LabeledCorpus corpus = data::load_labeled_csv(
      csv,
      {"comment_text",
       {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"},
       "lang"},
      options);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();

  data::XlmrTokenizer tokenizer({a.tokenizer, 128, data::Pretokenize::kWordpunct, true});
  const size_t n = std::min(corpus.size(), static_cast<size_t>(a.texts));
  std::vector<std::vector<int32_t>> ids(n);
  t0 = Clock::now();
  parallel_for(n, static_cast<size_t>(a.threads), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) ids[i] = tokenizer.encode_unpadded(corpus.texts[i]);
  });
  const double tok_s = std::chrono::duration<double>(Clock::now() - t0).count();

  std::printf("csv load: %zu rows, %.0f MiB in %.2f s = %.0f rows/s, %.0f MiB/s\n", corpus.size(),
              mb, load_s, corpus.size() / load_s, mb / load_s);
  std::printf(
      "tokenize (wordpunct + sentencepiece, max_len 128, %lld threads): %zu texts in %.2f s = %.0f "
      "texts/s\n",
      a.threads, n, tok_s, n / tok_s);
  std::printf(
      "{\"rows\": %zu, \"mib\": %.1f, \"load_s\": %.3f, \"texts\": %zu, \"threads\": %lld, "
      "\"tokenize_s\": %.3f}\n",
      corpus.size(), mb, load_s, n, a.threads, tok_s);
  return 0;
}

}  // namespace sx::app
