// Checkpoints as earlier releases wrote them (tests of loading old files): format 1 (FNV-1a
// checksum, the first release) or 2 (XXH3), with lr_step_size, the learning-rate half-cycle in
// steps, and no schedule in pairs; format 3, without optimizer/layout.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "core/checksum.h"
#include "core/hash.h"
#include "io/hdf5.h"
#include "train/checkpoint.h"

namespace sx::test {

template <class Hash>
std::string legacy_checksum(const train::Checkpoint& c, double lr_step_size) {
  const train::TrainState& s = c.state;
  char state[512];
  std::snprintf(state, sizeof state, "%lld %lld %lld %lld %.17g %lld %.17g %lld %lld %s %.17g",
                static_cast<long long>(s.step), static_cast<long long>(s.epoch),
                static_cast<long long>(s.pairs_consumed), static_cast<long long>(s.adam_iterations),
                s.best_val_loss, static_cast<long long>(s.epochs_without_improvement),
                s.train_seconds, static_cast<long long>(s.bad_steps),
                static_cast<long long>(s.world_size), s.config_hash.c_str(), lr_step_size);
  Hash h;
  h.update(state);
  for (const auto& [name, t] : c.params) {
    h.update(name);
    h.update(t.data_ptr(), t.nbytes());
  }
  for (const torch::Tensor* t : {&c.adam_m, &c.adam_v}) h.update(t->data_ptr(), t->nbytes());
  return h.hex();
}

// params/ and optimizer/m, /v of `c` (CPU float32), as every format stores them.
inline void write_tensors(io::H5File& f, const train::Checkpoint& c) {
  for (const auto& [name, t] : c.params) {
    std::vector<uint64_t> dims(t.sizes().begin(), t.sizes().end());
    f.write("params/" + name, t.data_ptr<float>(), dims);
  }
  f.write("optimizer/m", c.adam_m.data_ptr<float>(), {uint64_t(c.adam_m.numel())});
  f.write("optimizer/v", c.adam_v.data_ptr<float>(), {uint64_t(c.adam_v.numel())});
}

// `c` with CPU float32 tensors and optimizer moments; format 1 or 2.
inline void write_legacy_checkpoint(const std::string& path, const train::Checkpoint& c,
                                    int64_t format, double lr_step_size) {
  const train::TrainState& s = c.state;
  io::H5File f = io::H5File::create(path);
  write_tensors(f, c);
  f.set_attr("format", format);
  const std::pair<const char*, int64_t> ints[] = {
      {"step", s.step},
      {"epoch", s.epoch},
      {"pairs_consumed", s.pairs_consumed},
      {"adam_iterations", s.adam_iterations},
      {"epochs_without_improvement", s.epochs_without_improvement},
      {"bad_steps", s.bad_steps},
      {"world_size", s.world_size}};
  for (const auto& [key, value] : ints) f.set_attr(key, value);
  f.set_attr("best_val_loss", s.best_val_loss);
  f.set_attr("train_seconds", s.train_seconds);
  f.set_attr("lr_step_size", lr_step_size);
  f.set_attr("config_hash", s.config_hash);
  f.set_attr("checksum", format == 1 ? legacy_checksum<Fnv1a>(c, lr_step_size)
                                     : legacy_checksum<Xxh3>(c, lr_step_size));
  f.close();
}

// `c` without optimizer/layout under the format attribute `format`: 3 is how the releases
// before the layout wrote it (the moments in the order `c` holds them); 4 is a crafted file.
// The checksum of formats 3 and 4 covers the same fields, so today's writer gives it.
inline void write_checkpoint_without_layout(const std::string& path, train::Checkpoint c,
                                            int64_t format = 3) {
  c.moment_layout.clear();
  const std::string today = path + ".today";
  train::write_checkpoint(today, c);
  const std::string checksum = io::H5File::open(today).attr_string("checksum");
  std::remove(today.c_str());
  io::H5File f = io::H5File::create(path);
  write_tensors(f, c);
  f.set_attr("format", format);
  train::for_each_field(c.state,
                        [&](const char* name, const auto& value, int) { f.set_attr(name, value); });
  f.set_attr("checksum", checksum);
  f.close();
}

}  // namespace sx::test
