// embed under `mpirun -np 2` (label "mpi"): the rows spread over two ranks give what one rank
// gives, from a CSV and from stdin.
#include "fixtures.h"
#include "io/hdf5.h"
#include "io/npy.h"

namespace sx {
namespace {

std::string mpirun(int ranks) {
  return test::mpirun(ranks, 120);
}

TEST(EmbedMpi, TwoRanksEqualOneRank) {
  test::InferenceData data;  // no checkpoint: the weights of model.pretrained
  test::TempDir dir;
  const std::string args = " embed --config " + data.config + " --csv " + data.test_csv +
                           " --text-column content --id-column id --out ";
  auto one = test::run_command(mpirun(1) + args + dir.path("one.npy"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = test::run_command(mpirun(2) + args + dir.path("two.h5"));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.err.find("weights: " + test::fixtures_dir() + "/hf-tiny-xlmr"), std::string::npos)
      << two.err;
  // The warning that no fine-tuned weights are used: once, from rank 0, not once a rank.
  EXPECT_EQ(test::count_occurrences(two.err, "has no checkpoint: using model.pretrained's weights"),
            1u)
      << two.err;
  const io::NpyMatrix a = io::read_npy(dir.path("one.npy"));
  io::H5File b = io::H5File::open(dir.path("two.h5"));
  ASSERT_GT(a.rows, 50u);
  EXPECT_EQ(b.dims("embeddings"), (std::vector<uint64_t>{a.rows, a.cols}));
  EXPECT_LT(test::max_abs_diff(a.values, b.read_float("embeddings")), 1e-6);
  EXPECT_EQ(b.read_strings("ids").size(), a.rows);

  // stdin: rank 0 reads the lines and shares them.
  std::string input = "first text\nsecond, longer text!\n\nfourth\nfifth one\n";
  auto s1 = test::run_command(
      mpirun(1) + " embed --config " + data.config + " --out " + dir.path("s1.npy"), input);
  ASSERT_EQ(s1.exit_code, 0) << s1.err;
  auto s2 = test::run_command(
      mpirun(2) + " embed --config " + data.config + " --out " + dir.path("s2.npy"), input);
  ASSERT_EQ(s2.exit_code, 0) << s2.err;
  const io::NpyMatrix x = io::read_npy(dir.path("s1.npy")), y = io::read_npy(dir.path("s2.npy"));
  EXPECT_EQ(x.rows, 5u);
  EXPECT_EQ(y.rows, 5u);
  EXPECT_LT(test::max_abs_diff(x.values, y.values), 1e-6);
}

// A set-up mistake under two ranks (an --out that exists, a --csv that does not, a checkpoint
// that is not there) was printed by each rank, then by MPI_Abort's banner: one line from rank 0
// now, and exit 2. export's set-up likewise.
TEST(EmbedMpi, ASetUpMistakeIsOneLineFromRankZero) {
  test::InferenceData data;
  test::TempDir dir;
  const std::string exists = dir.write("e.h5", "x");
  for (const std::string& args :
       {" embed --config " + data.config + " --csv " + data.test_csv +
            " --text-column content --out " + exists,
        " embed --config " + data.config + " --csv " + dir.path("nope.csv") +
            " --text-column content --out " + dir.path("n.h5"),
        " export --config " + data.config + " run.dir=" + dir.path("run") + " --checkpoint " +
            dir.path("nope.h5")}) {
    auto r = test::run_command(mpirun(2) + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(test::count_occurrences(r.err, "siamese-xlmr: error: "), 1u) << args << "\n" << r.err;
    EXPECT_EQ(r.err.find("MPI_ABORT"), std::string::npos) << args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace sx
