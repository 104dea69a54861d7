// The checkpoint and features fuzzers' regression corpora as ordinary tests: every input
// runs through the same body as under libFuzzer (a refusal must be a UserError, anything
// accepted must be something the file can hold). The seeds made by our writers must be
// accepted, and the crafted files of issue #12's findings refused for the right reason.
#include <iostream>

#include "fuzz/hdf5_bodies.h"
#include "test_util.h"

namespace sx {
namespace {

std::string corpus_dir(const std::string& kind) {
  return std::string(SX_SOURCE_DIR) + "/tests/fuzz/corpus/" + kind;
}

size_t run_corpus(const std::string& kind,
                  void (*body)(const std::string&, const uint8_t*, size_t)) {
  test::TempDir scratch;
  size_t n = 0;
  for (const auto& name : files::list(corpus_dir(kind))) {
    std::cerr << "corpus input " << kind << "/" << name << "\n";  // names the one that traps
    std::string bytes = test::read_file(files::join(corpus_dir(kind), name));
    body(scratch.path("input.h5"), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

TEST(FuzzCorpus, CheckpointInputsAreReadOrRefusedCleanly) {
  EXPECT_GE(run_corpus("checkpoint", fuzz::checkpoint_one_input), 10u);
}

TEST(FuzzCorpus, FeaturesInputsAreReadOrRefusedCleanly) {
  EXPECT_GE(run_corpus("features", fuzz::features_one_input), 8u);
}

TEST(FuzzCorpus, CheckpointSeedsLoadAndFindingsAreRefused) {
  const std::string dir = corpus_dir("checkpoint");
  EXPECT_EQ(train::read_checkpoint(dir + "/valid").state.step, 12);
  EXPECT_FALSE(train::read_checkpoint(dir + "/valid_best", false).adam_m.defined());
  const train::Checkpoint layout = train::read_checkpoint(dir + "/valid_layout");
  EXPECT_EQ(layout.format, 4);
  EXPECT_EQ(layout.moment_layout.size(), 3u);
  const std::pair<const char*, const char*> findings[] = {
      {"array_format", "attribute 'format' holds 64 values, expected one"},
      {"null_param", "dataset 'params/pool_ln.bias' has no array shape"},
      {"huge_param", "declares 68719476736 elements of 4 bytes but the file has"},
      {"truncated", "is unusable"},
      {"garbage", "is unusable"},
      {"heap_object_overflow", "attribute 'config_hash': heap collection at 8576 has object 1 of"},
      {"huge_header_chunk", "cannot open HDF5 file"},
      {"leak_cont_msg", "cannot open HDF5 file"},
      {"attribute_data_overflow", "has an attribute message shorter than its parts"},
      {"huge_root_header", "cannot open HDF5 file"},
      {"layout_missing", "holds optimizer moments but no optimizer/layout (their order)"},
      {"layout_huge_count", "dataset 'optimizer/layout' declares 1099511627776 elements"},
      {"layout_ints", "optimizer/layout"}};
  for (const auto& [name, expected] : findings) {
    const std::string e = test::error_of([&] { train::read_checkpoint(dir + "/" + name); });
    EXPECT_NE(e.find(expected), std::string::npos) << name << ": " << e;
  }
}

TEST(FuzzCorpus, FeaturesSeedsEvaluateAndFindingsAreRefused) {
  const std::string dir = corpus_dir("features");
  EXPECT_EQ(evaluate::evaluate_features(dir + "/valid").evaluated, 2);
  // 1500 columns, 6 training rows a fold: fitted in the rows' span, in milliseconds.
  EXPECT_EQ(evaluate::evaluate_features(dir + "/wide_matrix").evaluated, 2);
  const std::pair<const char*, const char*> findings[] = {
      {"zero_columns", "train/embeddings has 0 columns"},
      {"huge_embeddings", "declares 68719476736 elements of 4 bytes but the file has"},
      {"null_labels", "dataset 'train/labels' has no array shape"},
      {"odd_fold_name", "folds holds a language that is not a plain name ('\\xFF\\xFE\\x01'"},
      {"heap_object_overflow", "dataset 'train/langs': heap collection at 2048 has object 5 of"},
      {"heap_object_overflow2", "does not fit in its 4096 bytes"},
      {"leak_vlen_partial_read", "does not fit in its 4096 bytes"},
      {"repeated_row", "folds/es lists row 0 twice"},
      {"short_storage", "is not stored contiguously in the file"}};
  for (const auto& [name, expected] : findings) {
    const std::string e = test::error_of([&] { evaluate::evaluate_features(dir + "/" + name); });
    EXPECT_NE(e.find(expected), std::string::npos) << name << ": " << e;
  }
}

}  // namespace
}  // namespace sx
