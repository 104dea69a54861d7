// The fixtures of the tests that run the program: synthesized Jigsaw-shaped data, YAML configs on
// the fixture tokenizer and the tiny model, the mpirun prefix, and ways to run `siamese-xlmr
// train` under mpirun (in the foreground or the background) and read what its ranks logged.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <sys/types.h>

#include "cli_util.h"
#include "core/files.h"

namespace sx::test {

// Synthetic data shared by all tests of a binary (written once).
inline const std::string& synth_data_dir() {
  struct Data {
    std::string dir = files::join(files::temp_dir(), "sx-train-data-" + std::to_string(::getpid()));
    Data() {
      auto r = run_cli("data synth --out " + dir + " --rows 6000 --seed 5");
      if (r.exit_code != 0) throw std::runtime_error("data synth failed: " + r.err);
    }
    ~Data() { files::remove_all(dir); }
  };
  static const Data data;
  return data.dir;
}

// A tiny XLM-R config.json with dropout, for runs from random initialisation.
inline std::string dropout_model_config(const std::string& dir) {
  std::string path = files::join(dir, "config.json");
  write_file(
      path,
      R"({"vocab_size": 4002, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 70, "type_vocab_size": 1, "pad_token_id": 1,
    "layer_norm_eps": 1e-5, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu"})");
  return path;
}

inline std::string write_dir_file(const std::string& dir, const std::string& name,
                                  const std::string& text) {
  std::string path = files::join(dir, name);
  write_file(path, text);
  return path;
}

inline std::string train_config(const std::string& dir, const std::string& extra_yaml = "") {
  const std::string data = synth_data_dir();
  std::string yaml = "run:\n  dir: " + files::join(dir, "run") +
                     "\n  seed: 7\n  threads: 1\n  other_ranks_log_level: info\n"
                     "data:\n  train_csv: " +
                     files::join(data, "jigsaw-unintended-bias-train.csv") +
                     "\n  multilingual_csv: " + files::join(data, "validation.csv") +
                     "\n  test_csv: " + files::join(data, "test.csv") +
                     "\n  train_pairs: 800\n  val_pairs: 64\n"
                     "tokenizer:\n  model: " +
                     fixtures_dir() +
                     "/tokenizer/sentencepiece.bpe.model\n  max_len: 32\n"
                     "model:\n  pretrained: " +
                     fixtures_dir() +
                     "/hf-tiny-xlmr\n"
                     "train:\n  pairs_per_rank: 4\n  steps_per_epoch: 5\n  log_every: 1000\n" +
                     extra_yaml;
  return write_dir_file(dir, "config.yaml", yaml);
}

// mpirun as the tests run it (as root, oversubscribed), ended after `limit_s` seconds: the
// timeout turns a hang (the bug these tests look for) into a failure, not a stuck CI. Options
// and the ranks' programs follow.
inline std::string mpirun_prefix(int limit_s, int kill_after_s = 10) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k " +
         std::to_string(kill_after_s) + " " + std::to_string(limit_s) +
         " mpirun -q --oversubscribe --allow-run-as-root ";
}

// `ranks` ranks of siamese-xlmr; its arguments follow.
inline std::string mpirun(int ranks, int limit_s = 240) {
  return mpirun_prefix(limit_s) + "-np " + std::to_string(ranks) + " '" + SX_BINARY + "'";
}

// Runs train in the foreground; returns exit code and output.
inline RunResult train(int ranks, const std::string& config, const std::string& args = "") {
  return run_command(mpirun(ranks) + " train --config '" + config + "' " + args);
}

// A train run in the background: its exit code lands in `rc_file`. The shell that waits for it
// has no stdio of the test's (a run left behind must not hold CTest's pipe open), and a run
// that has not ended when the test does (a failed ASSERT) is ended: TERM to its `timeout`,
// which passes it on to mpirun's process group, then KILL to that group.
struct BackgroundRun {
  std::string rc_file, pid_file;
  // `ranks` 0: one process without mpirun, with SIGINT's default action (a command started in
  // the background ignores it) under timeout(1), which passes a SIGINT on as a terminal would.
  BackgroundRun(int ranks, const std::string& config, const std::string& work_dir,
                const std::string& args = "") {
    rc_file = files::join(work_dir, "rc");
    pid_file = files::join(work_dir, "pid");
    const std::string launch =
        ranks > 0 ? mpirun(ranks)
                  : "timeout -k 10 240 env --default-signal=INT '" + std::string(SX_BINARY) + "'";
    std::string cmd = "(" + launch + " train --config '" + config + "' " + args + " >'" +
                      files::join(work_dir, "out") + "' 2>&1 </dev/null & echo $! >'" + pid_file +
                      "'; wait $!; echo $? >'" + rc_file + ".tmp'; mv '" + rc_file + ".tmp' '" +
                      rc_file + "') </dev/null >/dev/null 2>&1 &";
    std::system(cmd.c_str());
  }
  BackgroundRun(const BackgroundRun&) = delete;
  BackgroundRun& operator=(const BackgroundRun&) = delete;
  ~BackgroundRun() {
    if (files::exists(rc_file)) return;
    const pid_t pid = this->pid();
    if (pid <= 0) return;  // never kill(0) or kill(-1): CTest's group, everything
    ::kill(pid, SIGTERM);
    if (wait(20) != -1) return;
    ::kill(-pid, SIGKILL);  // timeout(1) leads its own process group
    wait(5);                // the shell records the exit: the test's directory can go
  }
  // The pid of the run's timeout(1), which leads the process group of mpirun and its ranks
  // (-1 when it did not start within 10 s).
  pid_t pid() const {
    for (int i = 0; i < 200; ++i) {
      if (files::exists(pid_file)) {
        const long pid = std::atol(read_file(pid_file).c_str());
        if (pid > 0) return static_cast<pid_t>(pid);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  // Exit code, or -1 if it has not ended within `seconds`.
  int wait(double seconds) const {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (files::exists(rc_file)) return std::stoi(read_file(rc_file));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
};

inline size_t count_occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// The pid a rank logged ("pid N on host"), or -1 when it has not started yet.
inline long rank_pid(const std::string& run_dir, int rank) {
  std::string log = read_file(files::join(run_dir, "log/rank-" + std::to_string(rank) + ".log"));
  auto pos = log.find(" pid ");
  if (pos == std::string::npos) return -1;
  return std::stol(log.substr(pos + 5));
}

// Polls `ready` every 50 ms until it holds or `seconds` have passed; returns whether it held.
template <class Ready>
bool wait_until(Ready ready, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// The pid a rank logged, waiting up to `seconds` for it to start (a busy machine's start can
// take a while), or -1.
inline long wait_for_rank_pid(const std::string& run_dir, int rank, double seconds = 60) {
  long pid = -1;
  wait_until([&] { return (pid = rank_pid(run_dir, rank)) > 0; }, seconds);
  return pid;
}

// The step lines in run.dir's metrics.jsonl, once there are `steps` of them or `seconds` have
// passed.
inline size_t wait_for_steps(const std::string& run_dir, size_t steps, double seconds = 60) {
  size_t n = 0;
  wait_until(
      [&] {
        n = count_occurrences(read_file(files::join(run_dir, "metrics.jsonl")), "\"step\"");
        return n >= steps;
      },
      seconds);
  return n;
}

// The step at which a rank's log says training stopped, or -1.
inline long stopped_step(const std::string& run_dir, int rank) {
  std::string log = read_file(files::join(run_dir, "log/rank-" + std::to_string(rank) + ".log"));
  auto pos = log.find("training stopped at step ");
  if (pos == std::string::npos) return -1;
  return std::stol(log.substr(pos + 25));
}

// ---- the predict / embed tests: data, a config and no training

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
                           // 20 rows per language, few of them toxic ('it' has one), fewer
                           // than the notebook sampler's assertions take (docs/differences.md).
                           "\n  pair_sampler: balanced"
                           "\ntokenizer:\n  model: " +
                           fixtures_dir() +
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
