#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "core/checksum.h"
#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "io/hdf5.h"

namespace sx::train {
namespace {

// Format 6 adds config_hash_form (its hash is of exact numbers); format 5 adds the epoch's
// training loss so far to the state; format 4 adds optimizer/layout;
// format 3 adds TrainState fields (train_state.h says which);
// format 2 checksums with XXH3 (memory speed on multi-GB files); files of formats 1 (FNV-1a)
// and 2 from earlier releases are still read for their weights.
constexpr int64_t kFormat = kCheckpointFormat;
constexpr int64_t kFormatFnv = 1;
constexpr int64_t kFormatLayout = 4;

std::vector<uint64_t> dims_of(const torch::Tensor& t) {
  std::vector<uint64_t> d;
  for (auto s : t.sizes()) d.push_back(static_cast<uint64_t>(s));
  return d;
}

std::string field_text(int64_t v) {
  return std::to_string(v);
}
std::string field_text(const std::string& v) {
  return v;
}
std::string field_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The fields a file of `format` holds, space-separated (for formats 1 and 2 the text their
// writers checksummed).
std::string state_text(const TrainState& s, int64_t format) {
  std::string text;
  int n = 0;
  for_each_field(s, [&](const char*, const auto& value, int since) {
    if (since > format) return;
    if (n++) text += ' ';
    text += field_text(value);
  });
  return text;
}

template <class Hash>
std::string checksum_with(const Checkpoint& c, int64_t format) {
  Hash h;
  h.update(state_text(c.state, format));
  for (const auto& [name, t] : c.params) {
    h.update(name);
    h.update(t.data_ptr(), t.nbytes());
  }
  for (const torch::Tensor* t : {&c.adam_m, &c.adam_v})
    if (t->defined()) h.update(t->data_ptr(), t->nbytes());
  for (const std::string& name : c.moment_layout) {
    const uint64_t size = name.size();  // each name's length first: the list has one reading
    h.update(&size, sizeof size);
    h.update(name);
  }
  return h.hex();
}

std::string checksum(const Checkpoint& c, int64_t format = kFormat) {
  return format == kFormatFnv ? checksum_with<Fnv1a>(c, format) : checksum_with<Xxh3>(c, format);
}

Checkpoint to_cpu(const Checkpoint& c) {
  Checkpoint out;
  out.state = c.state;
  for (const auto& [name, t] : c.params)
    out.params[name] = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  if (c.adam_m.defined()) out.adam_m = c.adam_m.detach().to(torch::kCPU).contiguous();
  if (c.adam_v.defined()) out.adam_v = c.adam_v.detach().to(torch::kCPU).contiguous();
  if (c.adam_m.defined()) out.moment_layout = c.moment_layout;
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
      if (!c.moment_layout.empty()) f.write_strings("optimizer/layout", c.moment_layout);
    }
    // The newest format only where it says more than 3 (moments with their layout, the epoch's
    // loss so far): best.h5 and the like stay readable by the releases before format 4.
    const int64_t format = c.moment_layout.empty() ? kFormatLayout - 1 : kFormat;
    f.set_attr("format", format);
    for_each_field(c.state, [&](const char* name, const auto& value, int since) {
      if (since <= format) f.set_attr(name, value);
    });
    f.set_attr("checksum", checksum(c, format));
    f.flush();
    f.close();
  });
}

// A format 3 plan from an untrusted file: every count positive, the half-cycle finite; or no
// plan at all (every field zero: a checkpoint not written by training, e.g. `bench
// checkpoint`'s), whose weights load but which training does not resume from.
void check_plan(const TrainState& s) {
  const PairPlan p = s.plan();
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

namespace {

// The file's format attribute, 0 without one. A string one is another file of this program's
// (features.h5, an embed --out file), named as such.
int64_t format_of(const io::H5File& f) {
  if (!f.has_attr("format")) return 0;
  try {
    return f.attr_int("format");
  } catch (const UserError&) {
    std::string kind;
    try {
      kind = f.attr_string("format");
    } catch (const UserError&) {  // neither: the integer's error says what it holds
    }
    if (kind.empty()) throw;
    throw UserError(f.path() + ": not a siamese-xlmr checkpoint but a file of format '" + kind +
                    "'");
  }
}

// optimizer/layout: every parameter of `params` named once.
std::vector<std::string> read_layout(const io::H5File& f,
                                     const std::map<std::string, torch::Tensor>& params) {
  if (!f.has("optimizer/layout"))
    throw UserError(f.path() + ": holds optimizer moments but no optimizer/layout (their order)");
  const std::vector<uint64_t> dims = f.dims("optimizer/layout");
  if (dims.size() != 1 || dims[0] != params.size())  // before reading: a crafted count
    throw UserError(f.path() + ": optimizer/layout names " +
                    (dims.size() == 1 ? std::to_string(dims[0]) : std::string("a table of")) +
                    " parameters, params/ holds " + std::to_string(params.size()));
  std::vector<std::string> layout = f.read_strings("optimizer/layout");
  std::map<std::string, int> seen;
  for (const std::string& name : layout)
    if (!params.count(name) || ++seen[name] > 1)
      throw UserError(f.path() + ": optimizer/layout names '" + name +
                      (params.count(name) ? "' twice" : "', which params/ lacks"));
  return layout;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path, bool with_optimizer) {
  try {
    io::H5File f = io::H5File::open(path);
    Checkpoint c;
    const int64_t format = format_of(f);
    c.format = format;
    if (format < kFormatFnv || format > kFormat)
      throw UserError(path +
                      ": not a siamese-xlmr checkpoint (format attribute missing or unknown)");
    for_each_field(c.state, [&](const char* name, auto& value, int since) {
      if (since > format) return;  // an older file: the field keeps its initial value
      using T = std::decay_t<decltype(value)>;
      if constexpr (std::is_same_v<T, int64_t>) value = f.attr_int(name);
      if constexpr (std::is_same_v<T, double>) value = f.attr_double(name);
      if constexpr (std::is_same_v<T, std::string>) value = f.attr_string(name);
    });
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
      if (format >= kFormatLayout) c.moment_layout = read_layout(f, c.params);
    }
    if (checksum(c, format) != f.attr_string("checksum"))
      throw UserError(path + ": checksum mismatch (the file is corrupt)");
    check_plan(c.state);
    if (with_optimizer && !has_optimizer)
      throw UserError(path +
                      ": holds no optimizer state (best.h5 keeps the weights only); resume from "
                      "a step checkpoint, checkpoints/step-*.h5, or with --resume auto");
    return c;
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) msg = msg.substr(path.size() + 2);
    throw UserError("checkpoint " + path + " is unusable: " + msg);
  }
}

void check_resumable(const Checkpoint& c, const std::string& path) {
  if (c.format < kFirstResumableFormat)
    throw UserError("checkpoint " + path + " is of format " + std::to_string(c.format) +
                    " (an earlier release), which training no longer resumes from; its weights "
                    "still load in export, embed, predict and export-hf: start a fresh run, or "
                    "resume from a checkpoint of format " +
                    std::to_string(kFirstResumableFormat) + " or later");
  if (c.state.plan().empty() || !c.adam_m.defined())
    throw UserError("checkpoint " + path +
                    " was not written by training (it has no schedule or optimizer state), so "
                    "training cannot resume from it");
}

std::string checkpoint_dir(const std::string& run_dir) {
  return files::join(run_dir, "checkpoints");
}

std::string step_checkpoint_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%010lld.h5", static_cast<long long>(step));
  return name;
}

std::string step_checkpoint_path(const std::string& run_dir, int64_t step) {
  return files::join(checkpoint_dir(run_dir), step_checkpoint_name(step));
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

std::string checkpoint_lineage(const std::string& path) {
  try {
    io::H5File f = io::H5File::open(path);
    return f.has_attr("lineage") ? f.attr_string("lineage") : "";
  } catch (const std::exception&) {
    return "";  // unreadable: nobody's, so never pruned
  }
}

void prune_step_checkpoints(const std::string& run_dir, int64_t keep, const std::string& lineage) {
  if (lineage.empty()) return;
  const auto all = list_step_checkpoints(run_dir);
  int64_t kept = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (checkpoint_lineage(all[i]) != lineage) continue;
    if (i == 0 || kept < keep) {
      ++kept;
      continue;
    }
    files::remove_all(all[i]);
  }
}

}  // namespace sx::train
