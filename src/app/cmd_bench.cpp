// bench data: CSV loading and tokenization throughput on a Jigsaw-shaped file of real text
// (tools/make_text_corpus.py; --synthetic: the synthesizer's), against the Python ways with
// --compare, and (--setup) the whole data set-up of a training run, phase by phase, with memory.
// Speed targets live here and in tools/, never in timed tests.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_set>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

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

// The benchmark's files: those in a.dir when its training file is there (used as they are),
// else written from the text corpus or, with --synthetic, by the synthesizer.
void ensure_files(const BenchDataArgs& a, const std::string& csv) {
  if (files::exists(csv)) return;
  if (a.synthetic) {
    const long long rows = a.rows ? a.rows : 1900000;
    std::printf("synthesizing %lld rows into %s ...\n", rows, a.dir.c_str());
    data::write_synthetic_jigsaw(a.dir, static_cast<size_t>(rows), 1);
    return;
  }
  if (!files::exists(a.corpus))
    throw UserError("bench data: no text corpus at " + a.corpus +
                    ": make it with tools/make_text_corpus.py " + files::parent(a.corpus) +
                    " (Debian's package descriptions and a sentencepiece model), or pass "
                    "--corpus FILE, or --synthetic for the synthesized corpus");
  std::printf("writing the benchmark's files from %s into %s ...\n", a.corpus.c_str(),
              a.dir.c_str());
  const auto summary =
      data::write_text_jigsaw(a.dir, a.corpus, static_cast<size_t>(std::max(0LL, a.rows)), 1);
  std::printf("%s: %zu rows\n", summary.train_csv.c_str(), summary.train_rows);
}

struct Phase {
  std::string name;
  double seconds;
  Memory memory;
};

int print_setup(const BenchDataArgs& a, const std::vector<Phase>& phases,
                const data::XlmrTokenizer& tokenizer, size_t tokenized, const dist::MpiEnv& env);

// The phases timed so far, each with the process's memory at its end.
struct PhaseLog {
  std::vector<Phase> phases{{"(process before set-up)", 0, memory_now()}};
  Clock::time_point t0 = Clock::now();
  void done(const std::string& name) {
    phases.push_back({name, seconds_since(t0), memory_now()});
    t0 = Clock::now();
  }
};

// Tokenizes the texts of the first epoch: the notebook's min(20 x validation pairs, training
// pairs) training pairs and every validation pair; the phase ends with the token stores still
// in memory. Returns how many texts were tokenized.
size_t tokenize_first_epoch(const data::XlmrTokenizer& tokenizer, const data::CorpusSplit& split,
                            const data::PairList& train_pairs, const data::PairList& val_pairs,
                            size_t threads, PhaseLog& log) {
  data::TokenStore train_tokens(tokenizer, split.train.texts, threads);
  data::TokenStore val_tokens(tokenizer, split.validation.texts, threads);
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
  const size_t tokenized = train_tokens.tokenized() + val_tokens.tokenized();
  log.done("tokenize first epoch (" + std::to_string(tokenized) + " texts)");
  return tokenized;
}

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
  PhaseLog log;
  data::Datasets datasets;
  data::CorpusSplit split;
  data::PairList train_pairs, val_pairs;
  const bool share_data = a.share_data && env.local_world > 1;
  if (!share_data || node->builder()) {
    datasets = data::load_datasets(config, /*with_test=*/true, /*progress=*/false);
    log.done("load (3 files)");
    split = data::split_corpus(datasets.english, datasets.multilingual,
                               static_cast<uint64_t>(config.run.seed), config.data.val_fraction);
    datasets.english = {};  // as train does: the split holds every row it uses
    datasets.multilingual = {};
    log.done("split");
    train_pairs = data::training_pairs(config, split);
    val_pairs = data::validation_pairs(config, split);
    log.done("pairs (" + std::to_string(train_pairs.size()) + " + " +
             std::to_string(val_pairs.size()) + ")");
  }
  if (share_data) {  // as train's connect() does
    data::share_corpora(split, datasets.test, *node);
    train_pairs = data::share_pairs(train_pairs, *node);
    val_pairs = data::share_pairs(val_pairs, *node);
    log.done("share corpora and pairs (node)");
  }
  data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  log.done("tokenizer");
  const size_t tokenized = tokenize_first_epoch(tokenizer, split, train_pairs, val_pairs,
                                                static_cast<size_t>(a.threads), log);
  return print_setup(a, log.phases, tokenizer, tokenized, env);
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

struct DataTimes {
  size_t rows = 0, texts = 0;
  double mib = 0, load_s = 0;
  double wordpunct_s = 0;  // the notebook's ids: wordpunct words, each through sentencepiece
  double whole_s = 0;      // whole texts through sentencepiece (tokenizer.pretokenize=none)
  data::WordCacheStats cache;
};

// Seconds to tokenize the first n texts on the bench's threads.
double time_tokenize(const BenchDataArgs& a, const data::XlmrTokenizer& tokenizer,
                     const data::LabeledCorpus& corpus, size_t n) {
  std::vector<std::vector<int32_t>> ids(n);
  const auto t0 = Clock::now();
  parallel_for(n, static_cast<size_t>(a.threads), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) ids[i] = tokenizer.encode_unpadded(corpus.texts[i]);
  });
  return seconds_since(t0);
}

DataTimes time_data_path(const BenchDataArgs& a, const std::string& csv) {
  DataTimes t;
  t.mib = static_cast<double>(files::size(csv)) / (1 << 20);
  data::LoadOptions options;
  options.key = "bench";
  options.parallel.threads = static_cast<size_t>(a.threads);
  data::LabeledCorpus corpus;
  for (long long r = 0; r < a.load_repeats; ++r) {  // the fastest of the repeats
    corpus = data::LabeledCorpus();                 // freed outside the timed part
    const auto t0 = Clock::now();
    corpus = data::load_labeled_csv(
        csv,
        {"comment_text",
         {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"},
         "lang"},
        options);
    const double s = seconds_since(t0);
    t.load_s = r == 0 ? s : std::min(t.load_s, s);
  }
  t.rows = corpus.size();
  t.texts = std::min(corpus.size(), static_cast<size_t>(a.texts));

  data::TokenizerOptions tok_options{a.tokenizer, 128, data::Pretokenize::kWordpunct, true};
  if (a.no_word_cache) tok_options.word_cache_bytes = 0;
  const data::XlmrTokenizer wordpunct(tok_options);
  t.wordpunct_s = time_tokenize(a, wordpunct, corpus, t.texts);
  t.cache = wordpunct.word_cache_stats();
  tok_options.pretokenize = data::Pretokenize::kNone;
  t.whole_s = time_tokenize(a, data::XlmrTokenizer(tok_options), corpus, t.texts);
  return t;
}

void print_data_times(const BenchDataArgs& a, const DataTimes& t) {
  std::printf(
      "csv load (%lld threads): %zu rows, %.0f MiB in %.2f s = %.0f rows/s, %.0f MiB/s (fastest of "
      "%lld)\n",
      a.threads, t.rows, t.mib, t.load_s, t.rows / t.load_s, t.mib / t.load_s, a.load_repeats);
  std::printf(
      "tokenize (wordpunct + sentencepiece, max_len 128, %lld threads): %zu texts in %.2f s = %.0f "
      "texts/s\n",
      a.threads, t.texts, t.wordpunct_s, t.texts / t.wordpunct_s);
  std::printf("word cache: %s%.1f%% hits of %llu lookups, %llu distinct words cached\n",
              a.no_word_cache ? "off; " : "", 100 * t.cache.hit_rate(),
              static_cast<unsigned long long>(t.cache.lookups),
              static_cast<unsigned long long>(t.cache.words));
  std::printf(
      "tokenize (whole text, sentencepiece, max_len 128, %lld threads): %zu texts in %.2f s = %.0f "
      "texts/s\n",
      a.threads, t.texts, t.whole_s, t.texts / t.whole_s);
  std::printf(
      "{\"rows\": %zu, \"mib\": %.1f, \"load_s\": %.3f, \"texts\": %zu, \"threads\": %lld, "
      "\"tokenize_s\": %.3f, \"word_cache_hit_rate\": %.4f, \"tokenize_whole_s\": %.3f}\n",
      t.rows, t.mib, t.load_s, t.texts, a.threads, t.wordpunct_s, t.cache.hit_rate(), t.whole_s);
}

std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs tools/bench_data_python.py with --compare's interpreter on the same file and texts;
// its output passes through, and its last JSON line is returned.
nlohmann::json run_python_bench(const BenchDataArgs& a, const std::string& csv) {
  if (!files::exists(a.python_script))
    throw UserError("--compare: cannot find " + a.python_script +
                    " (run from the repository's root, or pass --python-script PATH)");
  const std::string command = shell_quoted(a.compare) + " " + shell_quoted(a.python_script) + " " +
                              shell_quoted(csv) + " " + shell_quoted(a.tokenizer) + " --texts " +
                              std::to_string(a.texts) + " --load-repeats " +
                              std::to_string(a.load_repeats) + " --hf";
  std::printf("running: %s\n", command.c_str());
  std::fflush(stdout);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw UserError("--compare: cannot run " + a.compare + ": " + std::strerror(errno));
  std::string line, last_json;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) {
    std::fputs(buffer, stdout);
    line += buffer;
    if (line.back() != '\n') continue;
    if (line[0] == '{') last_json = line;
    line.clear();
  }
  const int status = ::pclose(pipe);
  if (status != 0 || last_json.empty())
    throw UserError("--compare: " + command + " failed (" +
                    (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                       : "status " + std::to_string(status)) +
                    ")");
  return nlohmann::json::parse(last_json);
}

// The ratios to the Python ways, measured one after the other in this run.
void compare_with_python(const BenchDataArgs& a, const std::string& csv, const DataTimes& t) {
  const nlohmann::json py = run_python_bench(a, csv);
  const double py_rate = py["texts"].get<double>() / py["tokenize_s"].get<double>();
  const double wordpunct_rate = t.texts / t.wordpunct_s, whole_rate = t.texts / t.whole_s;
  std::printf("ratios (this program, %lld threads, over Python on the same %zu rows, %zu texts):\n",
              a.threads, t.rows, t.texts);
  std::printf("  csv load: %.1fx the notebook way (csv module)\n",
              py["load_s"].get<double>() / t.load_s);
  std::printf("  tokenize, notebook ids (wordpunct): %.1fx the notebook way (1 thread)",
              wordpunct_rate / py_rate);
  if (py.contains("hf_tokenize_s")) {
    const double hf_rate = py["texts"].get<double>() / py["hf_tokenize_s"].get<double>();
    std::printf(", %.2fx HF tokenizers\n", wordpunct_rate / hf_rate);
    std::printf(
        "  tokenize, whole text: %.2fx HF tokenizers (XLMRobertaTokenizerFast, batch, %d "
        "threads)\n",
        whole_rate / hf_rate, py["hf_threads"].get<int>());
  } else {
    std::printf("; HF tokenizers not timed (see above)\n");
  }
  std::printf("  word cache hit rate: %.1f%%\n", 100 * t.cache.hit_rate());
}

}  // namespace

int cmd_bench_data(const BenchDataArgs& args) {
  init_logging({0, 1, LogLevel::kWarn, LogLevel::kWarn, ""});
  BenchDataArgs a = args;
  if (a.dir.empty()) a.dir = a.synthetic ? "runs/bench-data" : "runs/bench-data-text";
  const std::string csv = files::join(a.dir, "jigsaw-unintended-bias-train.csv");
  ensure_files(a, csv);
  if (a.setup) return bench_setup(a);
  const DataTimes t = time_data_path(a, csv);
  print_data_times(a, t);
  if (!a.compare.empty()) compare_with_python(a, csv, t);
  return 0;
}

}  // namespace sx::app
