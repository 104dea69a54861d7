// The command line as users meet it: help, exit codes, one-line errors, tokenize.
#include <nlohmann/json.hpp>

#include "cli_util.h"

namespace sx {
namespace {

using test::run_cli;

TEST(Cli, HelpForEverySubcommand) {
  for (const char* sub : {"train", "export", "export-hf", "evaluate", "predict", "embed",
                          "tokenize", "data", "data stats", "data pairs", "data synth", "bench",
                          "bench data", "bench checkpoint", "version", "config"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
  }
}

// A stop signal while the libraries load (about half a second, libtorch's initializers) ended
// `train` instead of asking it to stop: its handlers are in place before them. Other commands
// keep the default actions.
TEST(Cli, TrainTakesStopSignalsBeforeItsLibrariesLoad) {
  const std::string probe = std::string("LD_PRELOAD='") + SX_PREINIT_PROBE + "' ";
  auto train = test::run_command(probe + "'" + SX_BINARY + "' train --help");
  EXPECT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.err.find("preinit probe: SIGUSR1 handled, SIGTERM handled"), std::string::npos)
      << train.err;
  auto embed = test::run_command(probe + "'" + SX_BINARY + "' embed --help");
  EXPECT_EQ(embed.exit_code, 0) << embed.err;
  EXPECT_NE(embed.err.find("preinit probe: SIGUSR1 default, SIGTERM default"), std::string::npos)
      << embed.err;
}

TEST(Cli, NoSubcommandIsAnError) {
  auto r = run_cli("");
  EXPECT_NE(r.exit_code, 0);
}

// A mistyped command said "A subcommand is required".
TEST(Cli, AnUnknownCommandIsNamedWithTheChoices) {
  auto r = run_cli("predcit");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(
      r.err.rfind("siamese-xlmr: error: unknown command 'predcit'; expected one of train, ", 0), 0u)
      << r.err;
  EXPECT_NE(r.err.find(", predict, "), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  auto nested = run_cli("data stat");
  EXPECT_EQ(nested.exit_code, 2);
  EXPECT_EQ(nested.err,
            "siamese-xlmr: error: unknown command 'data stat'; expected one of stats, pairs, "
            "synth\n");
}

TEST(Cli, MissingRequiredArgumentsFailWithUsage) {
  for (const char* sub : {"evaluate", "bench", "bench data", "data"}) {
    auto r = run_cli(sub);
    EXPECT_EQ(r.exit_code, 2) << sub;
    EXPECT_NE(r.err.find("required"), std::string::npos) << sub << r.err;
  }
}

// An empty --out was the current directory: export-hf replaced a README.md and config.json
// there, data synth wrote its CSVs there.
// Under `mpirun -np 2` each rank ran predict or export-hf whole: one wrote, the other failed.
// Commands of one process under mpirun ran whole on each rank: every rank wrote the same files
// or printed every line.
TEST(Cli, OneProcessCommandsUnderSeveralRanksAreRefused) {
  for (const char* command :
       {"predict", "export-hf --out x", "evaluate x.h5", "tokenize", "data stats",
        "data pairs --out x.csv", "data synth --rows 10 --out x"}) {
    auto r =
        test::run_command(std::string("OMPI_COMM_WORLD_SIZE=2 '") + SX_BINARY + "' " + command);
    EXPECT_EQ(r.exit_code, 2) << command << r.err;
    EXPECT_NE(r.err.find("runs as one process, found OMPI_COMM_WORLD_SIZE=2"), std::string::npos)
        << command << r.err;
  }
}

TEST(Cli, AnEmptyOutIsRefused) {
  for (const char* args :
       {"export-hf --out ''", "data synth --rows 10 --out ''", "data pairs --out ''"}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << r.err;
    EXPECT_NE(r.err.find("--out: expected a path, found an empty value"), std::string::npos)
        << args << r.err;
  }
  // An unset $CKPT in a script (--resume "") started a fresh run, exit 0.
  auto r = run_cli("train --resume ''");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--resume: expected a path, found an empty value"), std::string::npos)
      << r.err;
}

// Options that cannot act together were silently ignored: the ids of an .npy or text embed (now
// a warning), --pretrained beside --checkpoint (the checkpoint won), --get beside --docs.
TEST(Cli, OptionsThatCannotActTogetherAreRefused) {
  test::TempDir dir;
  const std::string csv = dir.write("t.csv", "id,text\n1,hola\n");
  for (const std::string& out : {" --out " + dir.path("e.npy"), std::string()}) {
    auto r = run_cli("embed tokenizer.model=" + test::fixtures_dir() +
                     "/tokenizer/sentencepiece.bpe.model model.pretrained=" + test::fixtures_dir() +
                     "/hf-tiny-xlmr --csv " + csv + " --text-column text --id-column id" + out);
    EXPECT_EQ(r.exit_code, 0) << r.err;  // scripts that did this still work, and are told
    EXPECT_NE(r.err.find("--id-column: only an HDF5 --out (FILE.h5, FILE.hdf5) keeps the ids"),
              std::string::npos)
        << r.err;
  }
  for (const char* args :
       {"embed --checkpoint x.h5 --pretrained", "predict --texts - --checkpoint x.h5 --pretrained",
        "config --docs --get run.dir"}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << r.err;
    EXPECT_NE(r.err.find("excludes"), std::string::npos) << args << r.err;
  }
}

TEST(Cli, EvaluateOfAMissingFileIsOneLine) {
  auto r = run_cli("evaluate /nope/features.h5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "siamese-xlmr: error: /nope/features.h5: cannot read: No such file or directory\n");
  test::TempDir dir;
  auto d = run_cli("evaluate " + dir.path());
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_EQ(d.err,
            "siamese-xlmr: error: " + dir.path() + ": is a directory, expected an HDF5 file\n");
}

TEST(Cli, PredictAndEmbedMistakesAreOneLine) {
  test::TempDir dir;
  auto no_features = run_cli("predict run.dir=" + dir.path("run"));
  EXPECT_EQ(no_features.exit_code, 2);
  EXPECT_NE(no_features.err.find("features.h5 not found"), std::string::npos) << no_features.err;
  EXPECT_EQ(test::count_lines(no_features.err), 1u) << no_features.err;
  const std::string model = "model.pretrained=" + test::fixtures_dir() +
                            "/hf-tiny-xlmr tokenizer.model=" + test::fixtures_dir() +
                            "/tokenizer/sentencepiece.bpe.model";
  for (auto [args, why] : {std::pair{"--csv x.csv", "name the column to embed with --text-column"},
                           std::pair{"--text-column content", "give it with --csv"},
                           std::pair{"--out x.txt", "expected a file ending in .h5"}}) {
    auto r = run_cli("embed " + model + " " + args, "");
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find(why), std::string::npos) << args << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << args << r.err;
  }
}

TEST(Cli, BenchCheckpointWritesReadsAndCleansUp) {
  test::TempDir dir;
  auto r = run_cli("bench checkpoint --params 100000 --dir " + dir.path("b"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| write (HDF5, XXH3 checksum, fsync, rename) |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("FNV-1a checksum alone"), std::string::npos);
  EXPECT_TRUE(files::list(dir.path("b")).empty());
}

TEST(Cli, BenchDataWithoutItsTextCorpusIsOneLine) {
  test::TempDir dir;
  auto r = run_cli("bench data --tokenizer " + test::fixtures_dir() +
                   "/tokenizer/sentencepiece.bpe.model --dir " + dir.path("bench") + " --corpus " +
                   dir.path("texts.csv"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no text corpus at " + dir.path("texts.csv") +
                       ": make it with tools/make_text_corpus.py"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_FALSE(files::exists(dir.path("bench")));
}

TEST(Cli, BenchDataOnATextCorpusPrintsTheRatiosOfItsComparison) {
  test::TempDir dir;
  dir.write("texts.csv", "lang,text\nen,\"Hello world.\nSecond line\"\nde,Guten Tag\nen,third\n");
  // A stand-in for tools/bench_data_python.py: the Python side at 1 text/s, HF at 2 texts/s.
  dir.write("peer.sh",
            "echo \"peer args: $*\"\n"
            "echo 'python tokenize (1 thread): ...'\n"
            "echo '{\"rows\": 3, \"load_s\": 30.0, \"texts\": 3, \"tokenize_s\": 3.0, "
            "\"hf_tokenize_s\": 1.5, \"hf_threads\": 2}'\n");
  auto r =
      run_cli("bench data --tokenizer " + test::fixtures_dir() +
              "/tokenizer/sentencepiece.bpe.model --dir " + dir.path("bench") + " --corpus " +
              dir.path("texts.csv") + " --compare /bin/sh --python-script " + dir.path("peer.sh"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("csv load (2 threads): 3 rows"), std::string::npos) << r.out;
  // Both sides keep the fastest of the same number of loads.
  EXPECT_NE(r.out.find("MiB/s (fastest of 3)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" --load-repeats 3 --hf\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("python tokenize (1 thread): ..."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x the notebook way (csv module)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x the notebook way (1 thread), "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenize, whole text: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x HF tokenizers (XLMRobertaTokenizerFast, batch, 2 threads)"),
            std::string::npos)
      << r.out;
}

TEST(Cli, ConfigGetPrintsOneValueForScripts) {
  auto r = run_cli("config --get dist.stop_signal dist.stop_signal=USR2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "USR2\n");
  r = run_cli("config --get run.dir run.dir=/tmp/some_run");
  EXPECT_EQ(r.out, "/tmp/some_run\n");
  r = run_cli("config --get train.pairs_per_rank train.pairs_per_rank=12");
  EXPECT_EQ(r.out, "12\n");
  r = run_cli("config --get run.nope");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no key 'run.nope'"), std::string::npos) << r.err;
}

// slurm/submit.sh reads the configuration with --check-inputs before queueing: a data file
// that is not there is said then, not after the wait in the queue.
TEST(Cli, ConfigCheckInputsNamesAMissingInputFile) {
  test::TempDir dir;
  const std::string csv =
      dir.write("train.csv",
                "id,comment_text,toxic,severe_toxicity,obscene,identity_attack,insult,threat\n"
                "1,hola,0,0,0,0,0,0\n");
  const std::string test_csv = dir.write("test.csv", "id,content,lang\n1,hola,es\n");
  const std::string others =
      " data.multilingual_csv=" + csv + " data.test_csv=" + test_csv +
      " tokenizer.model=" + test::fixtures_dir() +
      "/tokenizer/sentencepiece.bpe.model model.pretrained=" + test::fixtures_dir() +
      "/hf-tiny-xlmr";
  auto r = run_cli("config --get run.dir --check-inputs run.dir=r data.train_csv=" + csv + others);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "r\n");
  r = run_cli("config --get run.dir --check-inputs data.train_csv=" + dir.path("nope.csv") +
              others);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "siamese-xlmr: error: data.train_csv: file not found: " + dir.path("nope.csv") + "\n");
  // Without the flag the configuration alone is read, as before.
  r = run_cli("config --get run.dir data.train_csv=" + dir.path("nope.csv") + others);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The tokenizer found in model.pretrained is logged on stderr: stdout is the value alone.
  const std::string model = dir.path("model");
  files::create_directories(model);
  test::write_file(model + "/config.json",
                   test::read_file(test::fixtures_dir() + "/hf-tiny-xlmr/config.json"));
  test::write_file(model + "/sentencepiece.bpe.model",
                   test::read_file(test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model"));
  r = run_cli("config --get run.dir --check-inputs run.dir=r data.train_csv=" + csv +
              " data.multilingual_csv=" + csv + " data.test_csv=" + test_csv +
              " model.pretrained=" + model);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "r\n");
  // What would stop train in its first instant: a queued job that could not start.
  files::create_directories(dir.path("empty-model"));
  const std::string a_file = dir.write("a-file", "x");
  for (const auto& [wrong, said] :
       {std::pair{" data.test_csv=" + csv,
                  "data.test_csv: " + csv + ":1: missing column 'content'"},
        std::pair{" model.pretrained=" + dir.path("empty-model"),
                  dir.path("empty-model") + "/config.json"},
        std::pair{" run.dir=" + a_file,
                  "run.dir: " + a_file + " is a file, expected a directory"}}) {
    r = run_cli("config --get run.dir --check-inputs data.train_csv=" + csv + others + wrong);
    EXPECT_EQ(r.exit_code, 2) << wrong << "\n" << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1u) << wrong << "\n" << r.err;
    EXPECT_NE(r.err.find(said), std::string::npos) << wrong << "\n" << r.err;
  }
}

TEST(Cli, ConfigMistakeIsOneLineAndExitTwo) {
  auto r = run_cli("config train.patiense=3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(test::count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("did you mean 'train.patience'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos);
}

TEST(Cli, MissingInputFileIsOneLine) {
  auto r = run_cli("tokenize tokenizer.model=/nope/spm.model", "hi\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "siamese-xlmr: error: tokenizer.model: file not found: /nope/spm.model\n");
}

// Open MPI keeps its session files under TMPDIR: a missing one or a file failed MPI_Init in some
// fifty lines of its internals, exit 1.
TEST(Cli, ATmpdirThatIsNoWritableDirectoryIsOneLine) {
  test::TempDir dir;
  const std::string file = dir.write("a-file", "");
  for (const auto& [tmpdir, why] :
       {std::pair<std::string, std::string>{dir.path("missing"), "does not exist"},
        {file, "is not a directory"}}) {
    auto r = test::run_command("TMPDIR='" + tmpdir + "' '" + SX_BINARY + "' export");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, "siamese-xlmr: error: TMPDIR=" + tmpdir + " " + why +
                         ": Open MPI keeps its session files there; point TMPDIR at a writable "
                         "directory or unset it\n");
  }
}

TEST(Cli, ConfigPrintsResolvedYamlAndDocs) {
  auto r = run_cli("config run.seed=5");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("  seed: 5\n"), std::string::npos) << r.out;
  auto docs = run_cli("config --docs");
  EXPECT_NE(docs.out.find("| `train.patience` |"), std::string::npos);
}

TEST(Cli, DocsConfigurationMdMatchesTheSchema) {
  // docs/configuration.md embeds `siamese-xlmr config --docs`; it must not drift.
  std::string doc = test::read_file(std::string(SX_SOURCE_DIR) + "/docs/configuration.md");
  auto docs = run_cli("config --docs");
  EXPECT_NE(doc.find(docs.out), std::string::npos)
      << "regenerate the table: siamese-xlmr config --docs";
}

TEST(Cli, TokenizeReproducesTheNotebookIds) {
  auto ref = nlohmann::json::parse(
      test::read_file(test::fixtures_dir() + "/tokenizer/tokenizer_ref.json"));
  std::string input, expected;
  for (const auto& c : ref["cases"]) {
    std::string text = c["text"];
    if (text.find('\n') != std::string::npos || text.find('\r') != std::string::npos) continue;
    input += text + "\n";
    std::string line;
    for (const auto& id : c["seed_ids_128"])
      line += (line.empty() ? "" : " ") + std::to_string(id.get<int>());
    expected += line + "\n";
  }
  auto r = run_cli("tokenize tokenizer.model=" + test::fixtures_dir() +
                       "/tokenizer/sentencepiece.bpe.model tokenizer.keep_eos=false",
                   input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected);
}

TEST(Cli, DataStatsOnSynthesizedData) {
  test::TempDir dir;
  auto synth = run_cli("data synth --out " + dir.path("d") + " --rows 3000 --seed 2");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  auto r = run_cli("data stats data.train_csv=" + dir.path("d/jigsaw-unintended-bias-train.csv") +
                   " data.multilingual_csv=" + dir.path("d/validation.csv") +
                   " data.test_csv=" + dir.path("d/test.csv") +
                   " data.train_pairs=2000 data.val_pairs=100 data.pair_sampler=balanced");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("english (data.train_csv): 3000 rows"), std::string::npos) << r.out;
  // The balanced sampler makes exactly the requested shares (the notebook's would stop
  // normal-toxic pairs at the number of toxic texts).
  EXPECT_NE(
      r.out.find("training pairs en-en: toxic-toxic 500, normal-normal 500, normal-toxic 1000"),
      std::string::npos)
      << r.out;
}

TEST(Cli, DataSynthRejectsBadArguments) {
  auto r = run_cli("data synth --out /tmp/x --rows 0");
  EXPECT_NE(r.exit_code, 0);
}

TEST(Cli, DataSynthRefusesASeedItCannotUse) {
  // A seed past long long was clamped and used silently (every such seed gave the same data); a
  // negative one was refused with a 300-digit bound.
  test::TempDir dir;
  for (const char* seed : {"99999999999999999999", "-1", "abc"}) {
    auto r = run_cli("data synth --rows 5 --out " + dir.path("d") + " --seed " + seed);
    EXPECT_EQ(r.exit_code, 2) << seed;
    EXPECT_NE(
        r.err.find(std::string("--seed: Value ") + seed + " not in range 0 to 9223372036854775806"),
        std::string::npos)
        << seed << ": " << r.err;
    EXPECT_FALSE(files::exists(dir.path("d"))) << seed;
  }
  EXPECT_EQ(run_cli("data synth --rows 5 --out " + dir.path("d") + " --seed 9223372036854775806")
                .exit_code,
            0);
}

// Issue #12: `data synth` overwrote the files of an earlier --out.
TEST(Cli, DataSynthDoesNotOverwriteWithoutForce) {
  test::TempDir dir;
  const std::string out = dir.path("d");
  ASSERT_EQ(run_cli("data synth --out " + out + " --rows 200 --seed 2").exit_code, 0);
  const std::string before = test::read_file(out + "/validation.csv");
  auto refused = run_cli("data synth --out " + out + " --rows 300 --seed 3");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(test::count_lines(refused.err), 1u) << refused.err;
  EXPECT_NE(refused.err.find("already exists; pass --force to overwrite"), std::string::npos)
      << refused.err;
  EXPECT_EQ(test::read_file(out + "/validation.csv"), before);
  auto forced = run_cli("data synth --out " + out + " --rows 300 --seed 3 --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(test::read_file(out + "/validation.csv"), before);
  EXPECT_EQ(files::list(out), (std::vector<std::string>{"jigsaw-unintended-bias-train.csv",
                                                        "test.csv", "validation.csv"}));
}

}  // namespace
}  // namespace sx
