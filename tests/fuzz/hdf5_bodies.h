// What the checkpoint and features fuzzers run on one input (the bytes of an HDF5 file); the
// regression corpora (tests/fuzz/corpus/checkpoint, .../features) run the same bodies as
// ordinary tests. HDF5 reads files and our readers check sizes against the file's size, so
// the input is written to `path` first (the fuzzers put it on /dev/shm).
//
// A reader may refuse an input only with a UserError; any other exception, a crash or a
// result the file could not hold is a finding (__builtin_trap).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "core/error.h"
#include "evaluate/evaluate.h"
#include "train/checkpoint.h"

namespace sx::fuzz {

inline void write_input(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

// The checkpoint reader (as `--resume` uses it): a UserError naming the file, or a checkpoint
// whose tensors the file can hold and whose optimizer moments cover every parameter.
inline void checkpoint_one_input(const std::string& path, const uint8_t* data, size_t size) {
  write_input(path, data, size);
  const std::string prefix = "checkpoint " + path + " is unusable: ";
  try {
    train::Checkpoint c = train::read_checkpoint(path, /*with_optimizer=*/false);
    int64_t n = 0;
    for (const auto& [name, t] : c.params) {
      if (!t.defined() || t.scalar_type() != torch::kFloat || !t.is_contiguous()) __builtin_trap();
      n += t.numel();
    }
    if (static_cast<uint64_t>(n) * sizeof(float) > size) __builtin_trap();
    if (c.adam_m.defined() != c.adam_v.defined()) __builtin_trap();
    if (c.adam_m.defined() && (c.adam_m.numel() != n || c.adam_v.numel() != n)) __builtin_trap();
    // A layout, where there is one, names every parameter once (format 4 with moments has one).
    if (!c.moment_layout.empty()) {
      std::set<std::string> names(c.moment_layout.begin(), c.moment_layout.end());
      if (names.size() != c.moment_layout.size() || names.size() != c.params.size())
        __builtin_trap();
      for (const auto& name : names)
        if (!c.params.count(name)) __builtin_trap();
    }
    if (c.adam_m.defined() && c.format >= 4 && c.moment_layout.empty()) __builtin_trap();
    if (!c.adam_m.defined()) {  // best.h5-like: refused where the optimizer is needed
      try {
        train::read_checkpoint(path, /*with_optimizer=*/true);
        __builtin_trap();
      } catch (const UserError& e) {
        if (std::string(e.what()).rfind(prefix, 0) != 0) __builtin_trap();
      }
    }
  } catch (const UserError& e) {
    if (std::string(e.what()).rfind(prefix, 0) != 0) __builtin_trap();
  }
}

// The features reader (`evaluate`): a UserError, or folds whose AUCs are probabilities and
// whose report can be printed and written as JSON.
inline void features_one_input(const std::string& path, const uint8_t* data, size_t size) {
  write_input(path, data, size);
  try {
    evaluate::Evaluation e = evaluate::evaluate_features(path);
    if (e.folds.empty() || e.hidden_size <= 0) __builtin_trap();
    for (const auto& f : e.folds) {
      if (f.train_rows < 0 || (!f.skipped && f.test_rows <= 0)) __builtin_trap();
      if (!f.skipped && !(f.auc_logistic >= 0 && f.auc_logistic <= 1 && f.auc_centroid >= 0 &&
                          f.auc_centroid <= 1))
        __builtin_trap();
    }
    evaluate::to_json(e, &e);
    evaluate::to_table(e, &e);
  } catch (const UserError&) {
  }
}

}  // namespace sx::fuzz
