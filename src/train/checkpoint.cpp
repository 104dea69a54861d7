#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/checksum.h"
#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "io/hdf5.h"

namespace sx::train {
namespace {

// Format 2 checksums with XXH3 (memory speed on multi-GB files); format 1 (FNV-1a) files
// from earlier releases are still read.
constexpr int64_t kFormat = 2;
constexpr int64_t kFormatFnv = 1;

std::vector<uint64_t> dims_of(const torch::Tensor& t) {
  std::vector<uint64_t> d;
  for (auto s : t.sizes()) d.push_back(static_cast<uint64_t>(s));
  return d;
}

std::string state_text(const TrainState& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%lld %lld %lld %lld %.17g %lld %.17g %lld %lld %s %.17g",
                static_cast<long long>(s.step), static_cast<long long>(s.epoch),
                static_cast<long long>(s.pairs_consumed), static_cast<long long>(s.adam_iterations),
                s.best_val_loss, static_cast<long long>(s.epochs_without_improvement),
                s.train_seconds, static_cast<long long>(s.bad_steps),
                static_cast<long long>(s.world_size), s.config_hash.c_str(), s.lr_step_size);
  return buf;
}

template <class Hash>
std::string checksum_with(const Checkpoint& c) {
  Hash h;
  h.update(state_text(c.state));
  for (const auto& [name, t] : c.params) {
    h.update(name);
    h.update(t.data_ptr(), t.nbytes());
  }
  for (const torch::Tensor* t : {&c.adam_m, &c.adam_v})
    if (t->defined()) h.update(t->data_ptr(), t->nbytes());
  return h.hex();
}

std::string checksum(const Checkpoint& c, int64_t format = kFormat) {
  return format == kFormatFnv ? checksum_with<Fnv1a>(c) : checksum_with<Xxh3>(c);
}

Checkpoint to_cpu(const Checkpoint& c) {
  Checkpoint out;
  out.state = c.state;
  for (const auto& [name, t] : c.params)
    out.params[name] = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  if (c.adam_m.defined()) out.adam_m = c.adam_m.detach().to(torch::kCPU).contiguous();
  if (c.adam_v.defined()) out.adam_v = c.adam_v.detach().to(torch::kCPU).contiguous();
  return out;
}

}  // namespace

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint_in) {
  Checkpoint c = to_cpu(checkpoint_in);
  files::write_atomically(path, [&](const std::string& tmp) {
    io::H5File f = io::H5File::create(tmp);
    for (const auto& [name, t] : c.params)
      f.write("params/" + name, t.data_ptr<float>(), dims_of(t));
    if (c.adam_m.defined()) {
      f.write("optimizer/m", c.adam_m.data_ptr<float>(), dims_of(c.adam_m));
      f.write("optimizer/v", c.adam_v.data_ptr<float>(), dims_of(c.adam_v));
    }
    const TrainState& s = c.state;
    f.set_attr("format", kFormat);
    f.set_attr("step", s.step);
    f.set_attr("epoch", s.epoch);
    f.set_attr("pairs_consumed", s.pairs_consumed);
    f.set_attr("adam_iterations", s.adam_iterations);
    f.set_attr("best_val_loss", s.best_val_loss);
    f.set_attr("epochs_without_improvement", s.epochs_without_improvement);
    f.set_attr("train_seconds", s.train_seconds);
    f.set_attr("bad_steps", s.bad_steps);
    f.set_attr("world_size", s.world_size);
    f.set_attr("config_hash", s.config_hash);
    f.set_attr("lr_step_size", s.lr_step_size);
    f.set_attr("checksum", checksum(c));
    f.flush();
    f.close();
  });
}

Checkpoint read_checkpoint(const std::string& path, bool with_optimizer) {
  try {
    io::H5File f = io::H5File::open(path);
    Checkpoint c;
    const int64_t format = f.has_attr("format") ? f.attr_int("format") : 0;
    if (format != kFormat && format != kFormatFnv)
      throw UserError(path +
                      ": not a siamese-xlmr checkpoint (format attribute missing or unknown)");
    TrainState& s = c.state;
    s.step = f.attr_int("step");
    s.epoch = f.attr_int("epoch");
    s.pairs_consumed = f.attr_int("pairs_consumed");
    s.adam_iterations = f.attr_int("adam_iterations");
    s.best_val_loss = f.attr_double("best_val_loss");
    s.epochs_without_improvement = f.attr_int("epochs_without_improvement");
    s.train_seconds = f.attr_double("train_seconds");
    s.bad_steps = f.attr_int("bad_steps");
    s.world_size = f.attr_int("world_size");
    s.config_hash = f.attr_string("config_hash");
    s.lr_step_size = f.attr_double("lr_step_size");
    // Straight into the tensors' memory: a multi-GB checkpoint is read once, not copied.
    auto read_tensor = [&](const std::string& name) {
      std::vector<int64_t> shape;
      for (auto d : f.dims(name)) shape.push_back(static_cast<int64_t>(d));
      torch::Tensor t = torch::empty(shape, torch::kFloat);
      f.read_float_into(name, t.data_ptr<float>(), static_cast<uint64_t>(t.numel()));
      return t;
    };
    int64_t n = 0;
    for (const auto& name : f.members("params")) {
      c.params[name] = read_tensor("params/" + name);
      n += c.params[name].numel();
    }
    const bool has_optimizer = f.has("optimizer/m");
    if (has_optimizer) {
      c.adam_m = read_tensor("optimizer/m").reshape({-1});
      c.adam_v = read_tensor("optimizer/v").reshape({-1});
      if (c.adam_m.numel() != n || c.adam_v.numel() != n)
        throw UserError(path + ": optimizer moments hold " + std::to_string(c.adam_m.numel()) +
                        " and " + std::to_string(c.adam_v.numel()) +
                        " values, expected one per parameter (" + std::to_string(n) + ")");
    }
    if (checksum(c, format) != f.attr_string("checksum"))
      throw UserError(path + ": checksum mismatch (the file is corrupt)");
    if (with_optimizer && !has_optimizer) throw UserError(path + ": holds no optimizer state");
    return c;
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) msg = msg.substr(path.size() + 2);
    throw UserError("checkpoint " + path + " is unusable: " + msg);
  }
}

std::string checkpoint_dir(const std::string& run_dir) {
  return files::join(run_dir, "checkpoints");
}

std::string step_checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%010lld.h5", static_cast<long long>(step));
  return files::join(checkpoint_dir(run_dir), name);
}

std::string best_checkpoint_path(const std::string& run_dir) {
  return files::join(checkpoint_dir(run_dir), "best.h5");
}

std::vector<std::string> list_step_checkpoints(const std::string& run_dir) {
  // Only step-<digits>.h5 names count, ordered by their number: any other name (a copy, an
  // editor's backup, "step-final.h5") is never taken for the newest.
  std::vector<std::pair<uint64_t, std::string>> numbered;
  for (const auto& name : files::list(checkpoint_dir(run_dir))) {
    const size_t digits = name.size() >= 8 ? name.size() - 8 : 0;  // "step-" + digits + ".h5"
    if (digits == 0 || digits > 18 || name.rfind("step-", 0) != 0 ||
        name.compare(name.size() - 3, 3, ".h5") != 0)
      continue;
    const std::string number = name.substr(5, digits);
    if (number.find_first_not_of("0123456789") != std::string::npos) continue;
    numbered.emplace_back(std::stoull(number), files::join(checkpoint_dir(run_dir), name));
  }
  std::sort(numbered.rbegin(), numbered.rend());
  std::vector<std::string> out;
  for (auto& item : numbered) out.push_back(std::move(item.second));
  return out;
}

void prune_step_checkpoints(const std::string& run_dir, int64_t keep) {
  auto all = list_step_checkpoints(run_dir);
  for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) files::remove_all(all[i]);
}

}  // namespace sx::train
