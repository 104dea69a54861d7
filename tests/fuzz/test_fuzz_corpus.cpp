// The fuzzers' regression corpus as ordinary tests.
#include "fuzz/fuzz_bodies.h"
#include "test_util.h"

namespace sx {
namespace {

TEST(FuzzCorpus, CsvInputsRunClean) {
  size_t n = 0;
  const std::string dir = std::string(SX_TEST_DATA_DIR) + "/../fuzz/corpus/csv";
  for (const auto& name : files::list(dir)) {
    std::string bytes = test::read_file(files::join(dir, name));
    fuzz::csv_one_input(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  EXPECT_GE(n, 10u);
}

}  // namespace
}  // namespace sx
