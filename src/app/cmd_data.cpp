// data stats, data pairs, data synth and tokenize: the data layer from the command line.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "app/commands.h"
#include "app/inference.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "data/datasets.h"
#include "data/pairs.h"
#include "data/split.h"
#include "data/synth.h"
#include "data/text.h"
#include "data/tokenizer.h"

namespace sx::app {
namespace {

struct LengthStats {
  std::vector<size_t> lengths;
  size_t toxic = 0;
};

std::string quantiles(std::vector<size_t>& v) {
  if (v.empty()) return "-";
  std::sort(v.begin(), v.end());
  auto q = [&](double f) { return v[static_cast<size_t>(f * (v.size() - 1))]; };
  char buf[160];
  std::snprintf(buf, sizeof buf, "min %zu  p10 %zu  p50 %zu  p90 %zu  p99 %zu  max %zu", v.front(),
                q(0.1), q(0.5), q(0.9), q(0.99), v.back());
  return buf;
}

void print_labeled(const char* title, const data::LabeledCorpus& corpus) {
  std::map<std::string, LengthStats> per_lang;
  for (size_t i = 0; i < corpus.size(); ++i) {
    auto& s = per_lang[corpus.langs[i]];
    s.lengths.push_back(data::count_code_points(corpus.texts[i]));
    s.toxic += corpus.labels[i];
  }
  std::printf("%s: %zu rows, %zu languages\n", title, corpus.size(), per_lang.size());
  for (auto& [lang, s] : per_lang)
    std::printf("  %-4s rows %8zu  toxic %7zu (%5.1f%%)  chars: %s\n", lang.c_str(),
                s.lengths.size(), s.toxic, 100.0 * s.toxic / s.lengths.size(),
                quantiles(s.lengths).c_str());
}

}  // namespace

int cmd_data_stats(const ConfigArgs& args) {
  refuse_several_processes("data stats");
  Config config = load_config(args.config_path, args.overrides);
  check_inputs(config, {"data"});
  init_logging({0, 1, config.run.log_level, config.run.other_ranks_log_level, ""});
  auto loaded = data::load_datasets(config, /*with_test=*/true);
  print_labeled("english (data.train_csv)", loaded.english);
  print_labeled("multilingual (data.multilingual_csv)", loaded.multilingual);
  if (loaded.test) {
    std::map<std::string, std::vector<size_t>> per_lang;
    for (size_t i = 0; i < loaded.test->size(); ++i)
      per_lang[loaded.test->langs[i]].push_back(data::count_code_points(loaded.test->texts[i]));
    std::printf("test (data.test_csv): %zu rows, %zu languages\n", loaded.test->size(),
                per_lang.size());
    for (auto& [lang, v] : per_lang)
      std::printf("  %-4s rows %8zu  chars: %s\n", lang.c_str(), v.size(), quantiles(v).c_str());
  }
  data::CorpusSplit split = data::split_corpus(loaded.english, loaded.multilingual, config.run.seed,
                                               config.data.val_fraction);
  std::printf("split (run.seed %lld): largest other language '%s' with %zu rows\n",
              static_cast<long long>(config.run.seed), split.largest_language.c_str(),
              split.max_size);
  std::printf("  multilingual set %zu rows (with %zu English), validation %zu, training %zu\n",
              split.multilingual.size(), split.max_size, split.validation.size(),
              split.train.size());
  for (const char* name : {"training", "validation"}) {
    data::PairReport report;
    if (name[0] == 't')
      data::training_pairs(config, split, &report);
    else
      data::validation_pairs(config, split, &report);
    for (const auto& c : report.per_language_pair)
      std::printf("  %s pairs %s-%s: toxic-toxic %llu, normal-normal %llu, normal-toxic %llu\n",
                  name, c.left_lang.c_str(), c.right_lang.c_str(),
                  static_cast<unsigned long long>(c.toxic_toxic),
                  static_cast<unsigned long long>(c.normal_normal),
                  static_cast<unsigned long long>(c.normal_toxic));
  }
  return 0;
}

int cmd_data_pairs(const ConfigArgs& args, const std::string& split_name,
                   const std::string& out_path) {
  refuse_several_processes("data pairs");  // every rank wrote the same file
  Config config = load_config(args.config_path, args.overrides);
  check_inputs(config, {"data"});
  if (out_path != "-") check_output_file("--out", out_path);
  init_logging({0, 1, config.run.log_level, config.run.other_ranks_log_level, ""});
  auto loaded = data::load_datasets(config, /*with_test=*/false);
  data::CorpusSplit split = data::split_corpus(loaded.english, loaded.multilingual, config.run.seed,
                                               config.data.val_fraction);
  const bool train = split_name == "train";
  const data::LabeledCorpus& corpus = train ? split.train : split.validation;
  data::PairReport report;
  const auto start = std::chrono::steady_clock::now();
  data::PairList pairs = train ? data::training_pairs(config, split, &report)
                               : data::validation_pairs(config, split, &report);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // `--out -` writes the CSV on stdout and the summary on stderr, so the two do not mix.
  std::FILE* summary = stdout;
  if (out_path == "-") {
    data::each_pairs_csv_line(corpus, pairs, [](std::string_view line) {
      std::fwrite(line.data(), 1, line.size(), stdout);
    });
    summary = stderr;  // main checks that stdout was written
  } else {
    data::write_pairs_csv(out_path, corpus, pairs);
  }
  const char* name = train ? "training" : "validation";
  for (const auto& c : report.per_language_pair)
    std::fprintf(summary,
                 "%s pairs %s-%s: toxic-toxic %llu of %llu, normal-normal %llu of %llu, "
                 "normal-toxic %llu of %llu\n",
                 name, c.left_lang.c_str(), c.right_lang.c_str(),
                 static_cast<unsigned long long>(c.toxic_toxic),
                 static_cast<unsigned long long>(c.wanted_toxic_toxic),
                 static_cast<unsigned long long>(c.normal_normal),
                 static_cast<unsigned long long>(c.wanted_normal_normal),
                 static_cast<unsigned long long>(c.normal_toxic),
                 static_cast<unsigned long long>(c.wanted_normal_toxic));
  std::fprintf(summary,
               "%s pairs: %llu (%llu same) from %zu texts, sampler %s, in %.3f s; fingerprint %s\n",
               name, static_cast<unsigned long long>(report.total()),
               static_cast<unsigned long long>(report.same()), corpus.size(),
               name_of(config.data.pair_sampler).c_str(), seconds, report.fingerprint.c_str());
  if (out_path != "-") std::printf("wrote %s\n", out_path.c_str());
  return 0;
}

int cmd_data_synth(const std::string& out_dir, long long rows, long long seed, int toxic_percent,
                   bool force) {
  refuse_several_processes("data synth");
  auto summary = data::write_synthetic_jigsaw(out_dir, static_cast<size_t>(rows),
                                              static_cast<uint64_t>(seed), toxic_percent, force);
  std::printf("%s: %zu rows\n%s: %zu rows\n%s: %zu rows\n", summary.train_csv.c_str(),
              summary.train_rows, summary.multilingual_csv.c_str(), summary.multilingual_rows,
              summary.test_csv.c_str(), summary.test_rows);
  return 0;
}

int cmd_tokenize(const ConfigArgs& args) {
  refuse_several_processes("tokenize");  // every rank printed every line
  Config config = load_config(args.config_path, args.overrides);
  check_inputs(config, {"tokenizer"});
  data::XlmrTokenizer tokenizer(data::tokenizer_options(config));
  std::ios::sync_with_stdio(false);
  std::string line;
  std::vector<int32_t> ids(tokenizer.max_len());
  std::string out;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    data::sanitize_utf8(line);
    tokenizer.encode_into(line, ids.data());
    out.clear();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

}  // namespace sx::app
