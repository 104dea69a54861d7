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

// Format 3 stores the schedule in pairs; format 2 checksums with XXH3 (memory speed on
// multi-GB files); format 1 (FNV-1a) files from earlier releases are still read.
constexpr int64_t kFormat = 3;
constexpr int64_t kFormatXxh3 = 2;
constexpr int64_t kFormatFnv = 1;

std::vector<uint64_t> dims_of(const torch::Tensor& t) {
  std::vector<uint64_t> d;
  for (auto s : t.sizes()) d.push_back(static_cast<uint64_t>(s));
  return d;
}

// The state attributes as one line, the checksum's first input. Formats 1 and 2 ended with
// lr_step_size, which only they store (`legacy_lr_step_size`); format 3 ends with the plan.
std::string state_text(const TrainState& s, int64_t format, double legacy_lr_step_size = 0) {
  char buf[640];
  int n = std::snprintf(buf, sizeof buf, "%lld %lld %lld %lld %.17g %lld %.17g %lld %lld %s",
                        static_cast<long long>(s.step), static_cast<long long>(s.epoch),
                        static_cast<long long>(s.pairs_consumed),
                        static_cast<long long>(s.adam_iterations), s.best_val_loss,
                        static_cast<long long>(s.epochs_without_improvement), s.train_seconds,
                        static_cast<long long>(s.bad_steps), static_cast<long long>(s.world_size),
                        s.config_hash.c_str());
  n = std::min(n, static_cast<int>(sizeof buf) - 1);
  if (format < kFormat)
    std::snprintf(buf + n, sizeof buf - n, " %.17g", legacy_lr_step_size);
  else
    std::snprintf(
        buf + n, sizeof buf - n, " %lld %lld %lld %lld %.17g %lld",
        static_cast<long long>(s.accumulation_steps), static_cast<long long>(s.plan.global_batch),
        static_cast<long long>(s.plan.pairs_per_epoch), static_cast<long long>(s.plan.max_epochs),
        s.plan.lr_step_pairs, static_cast<long long>(s.lr_pairs));
  return buf;
}

template <class Hash>
std::string checksum_with(const Checkpoint& c, const std::string& state) {
  Hash h;
  h.update(state);
  for (const auto& [name, t] : c.params) {
    h.update(name);
    h.update(t.data_ptr(), t.nbytes());
  }
  for (const torch::Tensor* t : {&c.adam_m, &c.adam_v})
    if (t->defined()) h.update(t->data_ptr(), t->nbytes());
  return h.hex();
}

std::string checksum(const Checkpoint& c, int64_t format = kFormat,
                     double legacy_lr_step_size = 0) {
  const std::string state = state_text(c.state, format, legacy_lr_step_size);
  return format == kFormatFnv ? checksum_with<Fnv1a>(c, state) : checksum_with<Xxh3>(c, state);
}

// A format 3 plan from an untrusted file: every count positive, the half-cycle finite; or no
// plan at all (every field zero: a checkpoint not written by training, e.g. `bench
// checkpoint`'s), which the trainer treats as a format 2 one.
void check_plan(const TrainState& s) {
  const PairPlan& p = s.plan;
  const bool none = p.global_batch == 0 && p.pairs_per_epoch == 0 && p.max_epochs == 0 &&
                    p.lr_step_pairs == 0 && s.lr_pairs == 0;
  if (none && s.accumulation_steps >= 1) return;
  if (p.global_batch < 1 || p.pairs_per_epoch < 1 || p.max_epochs < 1 || s.lr_pairs < 0 ||
      s.accumulation_steps < 1 || !(p.lr_step_pairs > 0) || !std::isfinite(p.lr_step_pairs))
    throw UserError("its schedule in pairs is invalid (plan_global_batch " +
                    std::to_string(p.global_batch) + ", pairs_per_epoch " +
                    std::to_string(p.pairs_per_epoch) + ", max_epochs " +
                    std::to_string(p.max_epochs) + ", lr_step_pairs " +
                    std::to_string(p.lr_step_pairs) + ", lr_pairs " + std::to_string(s.lr_pairs) +
                    ", accumulation_steps " + std::to_string(s.accumulation_steps) + ")");
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
    f.set_attr("accumulation_steps", s.accumulation_steps);
    f.set_attr("plan_global_batch", s.plan.global_batch);
    f.set_attr("pairs_per_epoch", s.plan.pairs_per_epoch);
    f.set_attr("max_epochs", s.plan.max_epochs);
    f.set_attr("lr_step_pairs", s.plan.lr_step_pairs);
    f.set_attr("lr_pairs", s.lr_pairs);
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
    if (format != kFormat && format != kFormatXxh3 && format != kFormatFnv)
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
    double legacy_lr_step_size = 0;
    if (format < kFormat) {
      legacy_lr_step_size = f.attr_double("lr_step_size");
    } else {
      s.accumulation_steps = f.attr_int("accumulation_steps");
      s.plan.global_batch = f.attr_int("plan_global_batch");
      s.plan.pairs_per_epoch = f.attr_int("pairs_per_epoch");
      s.plan.max_epochs = f.attr_int("max_epochs");
      s.plan.lr_step_pairs = f.attr_double("lr_step_pairs");
      s.lr_pairs = f.attr_int("lr_pairs");
      check_plan(s);
    }
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
    if (checksum(c, format, legacy_lr_step_size) != f.attr_string("checksum"))
      throw UserError(path + ": checksum mismatch (the file is corrupt)");
    if (with_optimizer && !has_optimizer) throw UserError(path + ": holds no optimizer state");
    return c;
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) msg = msg.substr(path.size() + 2);
    throw UserError("checkpoint " + path + " is unusable: " + msg);
  }
}

void complete_legacy_state(TrainState& state, const PairPlan& plan_of_its_run) {
  state.plan = plan_of_its_run;
  // Its rate followed its iteration count at one global batch.
  state.lr_pairs = state.adam_iterations * plan_of_its_run.global_batch;
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
