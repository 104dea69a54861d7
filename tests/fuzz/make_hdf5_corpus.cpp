// Writes the seed corpora of the checkpoint and features fuzzers: small valid files made by
// the project's writers, and one crafted file per finding of issue #12 (an array `format`
// attribute, a null-dataspace parameter, a few-KB file declaring a 256 GiB dataset, zero
// feature columns) plus their neighbours. Built with SX_BUILD_FUZZERS=ON; run from the
// repository root: build-fuzz/src/train/make_hdf5_corpus tests/fuzz/corpus
#include <hdf5.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/files.h"
#include "io/hdf5.h"
#include "train/checkpoint.h"

namespace {

using sx::io::H5File;
using sx::train::Checkpoint;

// A checkpoint with the tiny model's kinds of parameters at a few values each, so the file
// stays a few KB.
Checkpoint sample(bool with_optimizer) {
  torch::manual_seed(12);
  Checkpoint c;
  c.state.step = 12;
  c.state.epoch = 2;
  c.state.pairs_consumed = 96;
  c.state.adam_iterations = 11;
  c.state.best_val_loss = 0.5;
  c.state.epochs_without_improvement = 1;
  c.state.train_seconds = 3.5;
  c.state.world_size = 2;
  c.state.config_hash = "0123456789abcdef";
  c.state.lr_step_size = 30;
  c.params["embeddings.word_embeddings.weight"] = torch::randn({5, 3});
  c.params["encoder.layer.0.attention.self.query.weight"] = torch::randn({3, 3});
  c.params["pool_ln.bias"] = torch::randn({3});
  if (with_optimizer) {
    c.adam_m = torch::randn({27});
    c.adam_v = torch::rand({27});
  }
  return c;
}

// Reopens a file written by our writer and changes it with the raw C API.
void edit(const std::string& path, const std::function<void(hid_t)>& change) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  change(f);
  H5Fclose(f);
}

void array_attr(hid_t f, const char* name, hsize_t n) {
  if (H5Aexists(f, name) > 0) H5Adelete(f, name);
  std::vector<int64_t> values(n, 2);
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t a = H5Acreate2(f, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, values.data());
  H5Aclose(a);
  H5Sclose(space);
}

void replace_dataset(hid_t f, const char* name, hid_t space, hid_t type, const void* data,
                     hid_t create_plist = H5P_DEFAULT) {
  if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
  hid_t set = H5Dcreate2(f, name, type, space, H5P_DEFAULT, create_plist, H5P_DEFAULT);
  if (data) H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(set);
  H5Sclose(space);
}

// A dataset whose header declares `dims` but whose storage is never allocated.
void declared_only(hid_t f, const char* name, std::vector<hsize_t> dims, hid_t type) {
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(plist, H5D_ALLOC_TIME_LATE);
  replace_dataset(f, name, H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                  type, nullptr, plist);
  H5Pclose(plist);
}

void checkpoints(const std::string& dir) {
  auto path = [&](const char* name) { return sx::files::join(dir, name); };
  sx::train::write_checkpoint(path("valid"), sample(true));
  sx::train::write_checkpoint(path("valid_best"), sample(false));
  std::string bytes;
  {
    FILE* in = std::fopen(path("valid").c_str(), "rb");
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) bytes.append(buf, n);
    std::fclose(in);
  }
  auto write_bytes = [&](const char* name, const std::string& content) {
    FILE* out = std::fopen(path(name).c_str(), "wb");
    std::fwrite(content.data(), 1, content.size(), out);
    std::fclose(out);
  };
  write_bytes("truncated", bytes.substr(0, bytes.size() / 2));
  write_bytes("garbage", "\x89HDF\r\n\x1a\n not really a checkpoint");

  // The findings: each starts from a valid checkpoint.
  auto crafted = [&](const char* name, const std::function<void(hid_t)>& change) {
    sx::train::write_checkpoint(path(name), sample(true));
    edit(path(name), change);
  };
  crafted("array_format", [](hid_t f) { array_attr(f, "format", 64); });
  crafted("array_step", [](hid_t f) { array_attr(f, "step", 64); });
  crafted("string_format", [](hid_t f) {
    H5Adelete(f, "format");
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* value = "2";
    H5Awrite(a, type, &value);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  });
  crafted("null_param", [](hid_t f) {
    replace_dataset(f, "params/pool_ln.bias", H5Screate(H5S_NULL), H5T_NATIVE_FLOAT, nullptr);
  });
  crafted("scalar_param", [](hid_t f) {
    float one = 1;
    replace_dataset(f, "params/pool_ln.bias", H5Screate(H5S_SCALAR), H5T_NATIVE_FLOAT, &one);
  });
  crafted("huge_param", [](hid_t f) {
    declared_only(f, "params/pool_ln.bias", {1ull << 26, 1024}, H5T_NATIVE_FLOAT);  // 256 GiB
  });
  crafted("zero_by_huge_param", [](hid_t f) {
    declared_only(f, "params/pool_ln.bias", {0, (1ull << 63) + 5}, H5T_NATIVE_FLOAT);
  });
  crafted("int_param", [](hid_t f) {
    int64_t v[3] = {1, 2, 3};
    hsize_t n = 3;
    replace_dataset(f, "params/pool_ln.bias", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_INT64,
                    v);
  });
  crafted("short_moments", [](hid_t f) {
    float v[4] = {1, 2, 3, 4};
    hsize_t n = 4;
    replace_dataset(f, "optimizer/m", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_FLOAT, v);
  });
  crafted("no_checksum", [](hid_t f) { H5Adelete(f, "checksum"); });

  // Format 4: the moments' layout (optimizer/layout), valid and crafted.
  auto with_layout = [&](const char* name, const std::function<void(hid_t)>& change) {
    Checkpoint c = sample(true);
    for (const auto& item : c.params) c.moment_layout.push_back(item.first);
    sx::train::write_checkpoint(path(name), c);
    edit(path(name), change);
  };
  with_layout("valid_layout", [](hid_t) {});
  with_layout("layout_ints", [](hid_t f) {
    int64_t v[3] = {1, 2, 3};
    hsize_t n = 3;
    replace_dataset(f, "optimizer/layout", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_INT64, v);
  });
  with_layout("layout_huge_count", [](hid_t f) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    declared_only(f, "optimizer/layout", {1ull << 40}, type);
    H5Tclose(type);
  });
  with_layout("layout_missing", [](hid_t f) { H5Ldelete(f, "optimizer/layout", H5P_DEFAULT); });
}

// A features file in export's layout (docs/formats.md): two languages, `hidden` columns.
void features_file(const std::string& path, int64_t hidden, bool single_class_es) {
  H5File f = H5File::create(path);
  const int64_t n = 12;
  std::vector<float> x(static_cast<size_t>(n * hidden));
  std::vector<int64_t> labels(n), rows(n);
  std::vector<std::string> langs(n);
  for (int64_t i = 0; i < n; ++i) {
    langs[i] = i < n / 2 ? "en" : "es";
    labels[i] = single_class_es && i >= n / 2 ? 0 : i % 2;
    rows[i] = i;
    for (int64_t j = 0; j < hidden; ++j)
      x[i * hidden + j] = static_cast<float>(labels[i] + std::sin(i * 7.0 + j));
  }
  f.set_attr("format", std::string("siamese-xlmr features 1"));
  f.set_attr("hidden_size", hidden);
  f.write("train/embeddings", x.data(), {uint64_t(n), uint64_t(hidden)});
  f.write("train/labels", labels.data(), {uint64_t(n)});
  f.write("train/rows", rows.data(), {uint64_t(n)});
  f.write_strings("train/langs", langs);
  std::vector<int64_t> first(n / 2), second(n / 2);
  for (int64_t i = 0; i < n / 2; ++i) first[i] = i, second[i] = n / 2 + i;
  f.write("folds/en/train_index", second.data(), {uint64_t(n / 2)});
  f.write("folds/en/test_index", first.data(), {uint64_t(n / 2)});
  f.write("folds/es/train_index", first.data(), {uint64_t(n / 2)});
  f.write("folds/es/test_index", second.data(), {uint64_t(n / 2)});
  f.close();
}

void features(const std::string& dir) {
  auto path = [&](const char* name) { return sx::files::join(dir, name); };
  features_file(path("valid"), 4, false);
  features_file(path("single_class_fold"), 4, true);
  features_file(path("zero_columns"), 0, false);
  // Far more columns than rows: the logistic regression must not solve 1500 x 1500 systems.
  features_file(path("wide_matrix"), 1500, false);
  auto crafted = [&](const char* name, const std::function<void(hid_t)>& change) {
    features_file(path(name), 4, false);
    edit(path(name), change);
  };
  crafted("huge_embeddings", [](hid_t f) {
    declared_only(f, "train/embeddings", {1ull << 26, 1024}, H5T_NATIVE_FLOAT);
  });
  crafted("null_labels", [](hid_t f) {
    replace_dataset(f, "train/labels", H5Screate(H5S_NULL), H5T_NATIVE_INT64, nullptr);
  });
  crafted("label_two", [](hid_t f) {
    int64_t v[12] = {2, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    hsize_t n = 12;
    replace_dataset(f, "train/labels", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_INT64, v);
  });
  crafted("index_outside", [](hid_t f) {
    int64_t v[2] = {0, 12};
    hsize_t n = 2;
    replace_dataset(f, "folds/en/test_index", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_INT64,
                    v);
  });
  crafted("repeated_row", [](hid_t f) {
    int64_t v[7] = {0, 1, 2, 3, 4, 5, 0};
    hsize_t n = 7;
    replace_dataset(f, "folds/es/train_index", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_INT64,
                    v);
  });
  crafted("float_index", [](hid_t f) {
    double v[2] = {0, 1};
    hsize_t n = 2;
    replace_dataset(f, "folds/en/test_index", H5Screate_simple(1, &n, nullptr), H5T_NATIVE_DOUBLE,
                    v);
  });
  crafted("odd_fold_name", [](hid_t f) {
    // A fold (language) name that is not a plain name: not UTF-8, not printable.
    H5Lmove(f, "folds/es", f, "folds/\xff\xfe\x01", H5P_DEFAULT, H5P_DEFAULT);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  for (const char* kind : {"checkpoint", "features"})
    sx::files::create_directories(sx::files::join(root, kind));
  checkpoints(sx::files::join(root, "checkpoint"));
  features(sx::files::join(root, "features"));
  return 0;
}
