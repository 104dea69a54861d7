// bench data: CSV loading and tokenization throughput on a synthesized Jigsaw-sized file, and
// (--setup) the whole data set-up of a training run, phase by phase, with memory.
// Speed targets live here and in tools/, never in timed tests.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <unordered_set>

#include "app/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/log.h"
#include "core/parallel.h"
#include "data/datasets.h"
#include "data/jigsaw.h"
#include "data/node_share.h"
#include "data/synth.h"
#include "data/token_store.h"
#include "data/tokenizer.h"
#include "dist/deadline.h"
#include "dist/mpi_env.h"
#include "dist/node_memory.h"

namespace sx::app {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A "Key:   123 kB" line of a /proc file, in MiB (0 when absent).
double proc_mib(const char* file, const char* key) {
  std::ifstream in(file);
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) / 1024.0;
  return 0;
}

// private: anonymous memory, this process's alone; file: mapped file pages, which every
// process mapping the same file shares through the page cache; unshared: pages no other
// process maps (smaps Private_Clean + Private_Dirty; what another rank on the node adds);
// pss: this process's proportional share of all its pages (summed over the ranks of a node:
// the node's total).
struct Memory {
  double peak_mib, rss_mib, private_mib, file_mib, unshared_mib, pss_mib;
};

Memory memory_now() {
  return {proc_mib("/proc/self/status", "VmHWM"),
          proc_mib("/proc/self/status", "VmRSS"),
          proc_mib("/proc/self/status", "RssAnon"),
          proc_mib("/proc/self/status", "RssFile"),
          proc_mib("/proc/self/smaps_rollup", "Private_Clean") +
              proc_mib("/proc/self/smaps_rollup", "Private_Dirty"),
          proc_mib("/proc/self/smaps_rollup", "Pss")};
}

void ensure_synthesized(const BenchDataArgs& a, const std::string& csv) {
  if (files::exists(csv)) return;
  std::printf("synthesizing %lld rows into %s ...\n", a.rows, a.dir.c_str());
  data::write_synthetic_jigsaw(a.dir, static_cast<size_t>(a.rows), 1);
}

struct Phase {
  std::string name;
  double seconds;
  Memory memory;
};

int print_setup(const BenchDataArgs& a, const std::vector<Phase>& phases,
                const data::XlmrTokenizer& tokenizer, size_t tokenized, const dist::MpiEnv& env);

// The data set-up of `train` (train/replica.cpp's set_up_locally and the token stores of
// connect_replica), phase by phase. Under mpirun every rank runs it and prints its own table.
int bench_setup(const BenchDataArgs& a) {
  if (a.share)
    throw UserError(
        "--share: token ids tokenized once per node into shared memory were retired with "
        "tokenizer.share_node (its measurement made node memory worse); each rank tokenizes "
        "lazily what it consumes. Drop --share (--share-data still measures data.share_node)");
  dist::MpiSession mpi(nullptr, nullptr);
  const dist::MpiEnv& env = mpi.env();
  std::unique_ptr<data::NodeMemory> node;  // one for everything shared, as in train
  if (a.share_data) {
    dist::set_collective_timeout(600);  // the builder rank loads and tokenizes while others wait
    node = dist::make_node_memory();
  }
  Config config = load_config(
      "", {"data.train_csv=" + files::join(a.dir, "jigsaw-unintended-bias-train.csv"),
           "data.multilingual_csv=" + files::join(a.dir, "validation.csv"),
           "data.test_csv=" + files::join(a.dir, "test.csv"), "tokenizer.model=" + a.tokenizer,
           "data.train_pairs=" + std::to_string(a.pairs),
           "tokenizer.threads=" + std::to_string(a.threads)});
  std::vector<Phase> phases;
  phases.push_back({"(process before set-up)", 0, memory_now()});
  auto t0 = Clock::now();
  auto done = [&](const std::string& name) {
    phases.push_back({name, seconds_since(t0), memory_now()});
    t0 = Clock::now();
  };

  data::Datasets datasets;
  data::CorpusSplit split;
  data::PairList train_pairs, val_pairs;
  const bool share_data = a.share_data && env.local_world > 1;
  if (!share_data || node->builder()) {
    datasets = data::load_datasets(config, /*with_test=*/true, /*progress=*/false);
    done("load (3 files)");
    split = data::split_corpus(datasets.english, datasets.multilingual,
                               static_cast<uint64_t>(config.run.seed), config.data.val_fraction);
    datasets.english = {};  // as train does: the split holds every row it uses
    datasets.multilingual = {};
    done("split");
    train_pairs = data::training_pairs(config, split);
    val_pairs = data::validation_pairs(config, split);
    done("pairs (" + std::to_string(train_pairs.size()) + " + " + std::to_string(val_pairs.size()) +
         ")");
  }
  if (share_data) {  // as train's connect() does
    data::share_corpora(split, datasets.test, *node);
    train_pairs = data::share_pairs(train_pairs, *node);
    val_pairs = data::share_pairs(val_pairs, *node);
    done("share corpora and pairs (node)");
  }
  data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  const size_t threads = static_cast<size_t>(a.threads);
  done("tokenizer");
  data::TokenStore train_tokens(tokenizer, split.train.texts, threads);
  data::TokenStore val_tokens(tokenizer, split.validation.texts, threads);
  // The first epoch: the notebook's min(20 x validation pairs, training pairs) training pairs
  // and every validation pair.
  const size_t epoch = std::min(train_pairs.size(), 20 * val_pairs.size());
  std::vector<uint32_t> train_texts, val_texts;
  for (size_t p = 0; p < epoch; ++p) {
    train_texts.push_back(train_pairs[p].left);
    train_texts.push_back(train_pairs[p].right);
  }
  for (const auto& p : val_pairs) {
    val_texts.push_back(p.left);
    val_texts.push_back(p.right);
  }
  train_tokens.ensure(train_texts);
  val_tokens.ensure(val_texts);
  done("tokenize first epoch (" +
       std::to_string(train_tokens.tokenized() + val_tokens.tokenized()) + " texts)");
  return print_setup(a, phases, tokenizer, train_tokens.tokenized() + val_tokens.tokenized(), env);
}

int print_setup(const BenchDataArgs& a, const std::vector<Phase>& phases,
                const data::XlmrTokenizer& tokenizer, size_t tokenized, const dist::MpiEnv& env) {
  double total = 0;
  std::printf(
      "rank %d/%d (%d on this node): set-up of a training run on %s (%lld tokenizer "
      "threads%s):\n",
      env.rank, env.world, env.local_world, a.dir.c_str(), a.threads,
      a.share_data ? ", corpora and pairs shared by the node" : "");
  std::printf("  %-38s %8s %9s %8s %12s %16s %13s %8s\n", "phase", "seconds", "peak MiB", "RSS MiB",
              "private MiB", "file-backed MiB", "unshared MiB", "PSS MiB");
  for (const Phase& p : phases) {
    total += p.seconds;
    std::printf("  %-38s %8.2f %9.0f %8.0f %12.0f %16.0f %13.0f %8.0f\n", p.name.c_str(), p.seconds,
                p.memory.peak_mib, p.memory.rss_mib, p.memory.private_mib, p.memory.file_mib,
                p.memory.unshared_mib, p.memory.pss_mib);
  }
  std::printf("  %-38s %8.2f\n", "total", total);
  const auto stats = tokenizer.word_cache_stats();
  std::printf("word cache: %.1f%% hits of %llu lookups, %llu words\n", 100 * stats.hit_rate(),
              static_cast<unsigned long long>(stats.lookups),
              static_cast<unsigned long long>(stats.words));
  std::printf("{\"setup\": {");
  for (size_t i = 1; i < phases.size(); ++i)
    std::printf("%s\"%s\": %.3f", i > 1 ? ", " : "",
                phases[i].name.substr(0, phases[i].name.find(' ')).c_str(), phases[i].seconds);
  std::printf(
      ", \"tokenize_texts\": %zu, \"total_s\": %.3f, \"peak_mib\": %.0f, \"private_mib\": %.0f, "
      "\"unshared_mib\": %.0f, \"pss_mib\": %.0f, \"rank\": %d, \"world\": %d, \"shared\": "
      "%s, \"shared_data\": %s}}\n",
      tokenized, total, phases.back().memory.peak_mib, phases.back().memory.private_mib,
      phases.back().memory.unshared_mib, phases.back().memory.pss_mib, env.rank, env.world,
      a.share ? "true" : "false", a.share_data ? "true" : "false");
  return 0;
}

}  // namespace

int cmd_bench_data(const BenchDataArgs& a) {
  init_logging({0, 1, LogLevel::kWarn, LogLevel::kWarn, ""});
  const std::string csv = files::join(a.dir, "jigsaw-unintended-bias-train.csv");
  ensure_synthesized(a, csv);
  if (a.setup) return bench_setup(a);
  const double mb = static_cast<double>(files::size(csv)) / (1 << 20);

  auto t0 = Clock::now();
  data::LoadOptions options;
  options.key = "bench";
  options.parallel.threads = static_cast<size_t>(a.threads);
  data::LabeledCorpus corpus = data::load_labeled_csv(
      csv,
      {"comment_text",
       {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"},
       "lang"},
      options);
  const double load_s = seconds_since(t0);

  data::TokenizerOptions tok_options{a.tokenizer, 128, data::Pretokenize::kWordpunct, true};
  if (a.no_word_cache) tok_options.word_cache_bytes = 0;
  data::XlmrTokenizer tokenizer(tok_options);
  const size_t n = std::min(corpus.size(), static_cast<size_t>(a.texts));
  std::vector<std::vector<int32_t>> ids(n);
  t0 = Clock::now();
  parallel_for(n, static_cast<size_t>(a.threads), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) ids[i] = tokenizer.encode_unpadded(corpus.texts[i]);
  });
  const double tok_s = seconds_since(t0);
  const data::WordCacheStats cache = tokenizer.word_cache_stats();

  std::printf("csv load (%lld threads): %zu rows, %.0f MiB in %.2f s = %.0f rows/s, %.0f MiB/s\n",
              a.threads, corpus.size(), mb, load_s, corpus.size() / load_s, mb / load_s);
  std::printf(
      "tokenize (wordpunct + sentencepiece, max_len 128, %lld threads): %zu texts in %.2f s = %.0f "
      "texts/s\n",
      a.threads, n, tok_s, n / tok_s);
  std::printf("word cache: %s%.1f%% hits of %llu lookups, %llu distinct words cached\n",
              a.no_word_cache ? "off; " : "", 100 * cache.hit_rate(),
              static_cast<unsigned long long>(cache.lookups),
              static_cast<unsigned long long>(cache.words));
  std::printf(
      "{\"rows\": %zu, \"mib\": %.1f, \"load_s\": %.3f, \"texts\": %zu, \"threads\": %lld, "
      "\"tokenize_s\": %.3f, \"word_cache_hit_rate\": %.4f}\n",
      corpus.size(), mb, load_s, n, a.threads, tok_s, cache.hit_rate());
  return 0;
}

}  // namespace sx::app
