// The configuration schema: defaults, file + overrides, and the one-line errors users get.
#include "core/config.h"
#include "core/config_rules.h"
#include "core/error.h"
#include "core/strings.h"
#include "test_util.h"

namespace sx {
namespace {

// Loads and expects a UserError whose message contains every fragment.
void expect_error(const std::string& yaml, const std::vector<std::string>& overrides,
                  const std::vector<std::string>& fragments) {
  test::TempDir dir;
  std::string path = yaml.empty() ? "" : dir.write("config.yaml", yaml);
  try {
    load_config(path, overrides);
    ADD_FAILURE() << "expected an error for:\n" << yaml;
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << msg << "\nmissing: " << f;
  }
}

TEST(Config, DefaultsAreTheNotebooks) {
  Config c = default_config();
  EXPECT_EQ(c.run.seed, 42);
  EXPECT_EQ(c.tokenizer.max_len, 128);
  EXPECT_EQ(c.train.pairs_per_rank, 32);
  EXPECT_EQ(c.data.train_pairs, 500000);
  EXPECT_EQ(c.data.val_pairs, 1000);
  EXPECT_DOUBLE_EQ(c.train.adam_epsilon, 1e-7);
  EXPECT_DOUBLE_EQ(c.train.lr_min, 1e-6);
  EXPECT_DOUBLE_EQ(c.train.lr_max, 5e-5);
  EXPECT_DOUBLE_EQ(c.train.lr_step_epochs, 3);
  EXPECT_EQ(c.train.patience, 9);
  EXPECT_EQ(c.tokenizer.pretokenize, Pretokenize::kWordpunct);
  EXPECT_TRUE(c.tokenizer.keep_eos);
  EXPECT_EQ(c.data.bad_rows, BadRows::kFail);
  EXPECT_EQ(c.dist.backend, Backend::kAuto);
  EXPECT_EQ(c.data.train_label_fields.size(), 6u);
  EXPECT_DOUBLE_EQ(c.model.pool_ln_eps, 1e-3);
}

TEST(Config, FileThenOverrides) {
  test::TempDir dir;
  std::string path = dir.write("c.yaml",
                               "run:\n  seed: 7\n  max_duration: 90m\ntrain:\n  patience: 3\n"
                               "data:\n  train_label_fields: [a, b]\n");
  Config c = load_config(path, {"train.patience=5", "run.max_duration=2h",
                                "tokenizer.keep_eos=false", "data.multilingual_label_fields=x,y"});
  EXPECT_EQ(c.run.seed, 7);
  EXPECT_EQ(c.train.patience, 5);
  EXPECT_DOUBLE_EQ(c.run.max_duration, 7200);
  EXPECT_FALSE(c.tokenizer.keep_eos);
  EXPECT_EQ(c.data.train_label_fields, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.data.multilingual_label_fields, (std::vector<std::string>{"x", "y"}));
}

TEST(Config, DurationsAcceptUnitsAndSeconds) {
  EXPECT_DOUBLE_EQ(load_config("", {"run.max_duration=1h30m"}).run.max_duration, 5400);
  EXPECT_DOUBLE_EQ(load_config("", {"run.max_duration=45"}).run.max_duration, 45);
  EXPECT_DOUBLE_EQ(load_config("", {"run.max_duration=90s"}).run.max_duration, 90);
}

TEST(Config, ResolvedYamlRoundTrips) {
  test::TempDir dir;
  Config c = load_config("", {"run.dir=" + dir.path("run"), "train.patience=4", "run.seed=9"});
  std::string written = write_resolved_config(c);
  EXPECT_TRUE(files::exists(written));
  Config again = load_config(written, {});
  EXPECT_EQ(config_to_yaml(again), config_to_yaml(c));
  EXPECT_EQ(config_result_hash(again), config_result_hash(c));
}

// Decimals were written with 6 significant digits: a resume with train.lr_max 0.00012345679
// matched a checkpoint of 0.00012345678, and config.resolved.yaml held `max_duration:
// 1.0368e+06` for 12d, which no longer loaded. Values of 6 digits keep the hash they had.
TEST(Config, DecimalsRoundTripAndTheirHashTellsThemApart) {
  test::TempDir dir;
  Config c = load_config("", {"run.dir=" + dir.path("run"), "train.lr_max=0.00012345678",
                              "run.max_duration=12d", "train.adam_beta2=0.99999995"});
  Config again = load_config(write_resolved_config(c), {});
  EXPECT_EQ(again.train.lr_max, 0.00012345678);
  EXPECT_EQ(again.run.max_duration, 12 * 86400.0);
  EXPECT_EQ(again.train.adam_beta2, 0.99999995);
  EXPECT_EQ(config_result_hash(again), config_result_hash(c));
  EXPECT_NE(config_result_hash(load_config("", {"train.lr_max=0.00012345679"})),
            config_result_hash(load_config("", {"train.lr_max=0.00012345678"})));
  EXPECT_NE(config_to_yaml(c).find("max_duration: 1036800\n"), std::string::npos);
  // The hashes of earlier releases, whose checkpoints resume: the defaults, and usual values.
  EXPECT_EQ(config_result_hash(load_config("", {})), "c26f1452c55244dc");
  EXPECT_EQ(config_result_hash(load_config(
                "", {"train.lr_max=1e-4", "train.lr_min=2.5e-6", "data.label_threshold=0.35"})),
            "25b940da6eb0ef2a");
  EXPECT_EQ(config_result_hash(load_config("", {"run.max_duration=2h30m", "train.lr_max=3e-5"})),
            "b2a0386622a9c632");
}

TEST(Config, ResultHashFollowsResultKeysOnly) {
  Config a = load_config("", {});
  EXPECT_NE(config_result_hash(a), config_result_hash(load_config("", {"run.seed=1"})));
  EXPECT_EQ(config_result_hash(a), config_result_hash(load_config("", {"run.dir=elsewhere"})));
}

// A resume refused for another configuration names the keys that change results and differ.
TEST(ConfigHash, TheChangesNameTheKeysThatChangeResultsOnly) {
  const Config then = load_config("", {"train.lr_max=0.001", "run.dir=a"});
  const Config now = load_config("", {"train.lr_max=0.002", "train.margin=2", "run.dir=b"});
  EXPECT_EQ(config_result_changes(then, now),
            (std::vector<std::string>{"train.lr_max: 0.001 then, 0.002 now",
                                      "train.margin: 1 then, 2 now"}));
  EXPECT_TRUE(config_result_changes(then, then).empty());
}

// Ten-plus distinct mistakes, each with its one clear line.
TEST(ConfigErrors, UnknownKeySuggestsClosest) {
  expect_error("train:\n  patiense: 3\n", {},
               {"config.yaml:2", "unknown key 'train.patiense'", "did you mean 'train.patience'"});
}
TEST(ConfigErrors, UnknownSectionSuggestsClosest) {
  expect_error("trian:\n  patience: 3\n", {},
               {"config.yaml:1", "unknown key 'trian'", "did you mean 'train'"});
}
// yaml-cpp keeps both entries of a repeated key; the second silently won (or a second
// section merged into the first).
TEST(ConfigErrors, AKeyOrSectionGivenTwiceNamesBothLines) {
  expect_error("train:\n  patience: 3\n  patience: 5\n", {},
               {"config.yaml:3", "'train.patience' is given twice", "first at line 2"});
  expect_error("run:\n  seed: 1\ntrain:\n  patience: 3\nrun:\n  seed: 2\n", {},
               {"config.yaml:5", "'run' is given twice", "first at line 1"});
  // Dotted and nested name the same key: the later one silently won.
  expect_error(
      "train.patience: 5\ntrain:\n  patience: 6\n", {},
      {"config.yaml:3", "'train.patience' is given twice in this file", "first at line 1"});
}
// A second YAML document (after ---) was silently ignored.
TEST(ConfigErrors, AFileOfSeveralYamlDocumentsIsRefused) {
  expect_error("train:\n  patience: 5\n---\n- garbage\n", {},
               {"config.yaml:4", "holds 2 YAML documents", "expected one"});
  // Empty documents around the one with content are no second document.
  test::TempDir dir;
  const Config c = load_config(dir.write("c.yaml", "---\ntrain:\n  patience: 5\n---\n"), {});
  EXPECT_EQ(c.train.patience, 5);
}
TEST(ConfigErrors, WrongTypeNamesKeyValueAndExpectation) {
  expect_error("train:\n  patience: many\n", {},
               {"config.yaml:2", "train.patience expects an integer >= 1", "found 'many'"});
}
TEST(ConfigErrors, OutOfRange) {
  expect_error("", {"data.label_threshold=1.5"},
               {"data.label_threshold expects a number in [0, 1]", "found '1.5'"});
}
TEST(ConfigErrors, NegativeSeed) {
  expect_error("run:\n  seed: -1\n", {}, {"run.seed", "found '-1'"});
}
TEST(ConfigErrors, BadEnumListsChoices) {
  expect_error("", {"dist.backend=gloo"},
               {"dist.backend expects one of auto|nccl|mpi", "found 'gloo'"});
}
TEST(ConfigErrors, BadBool) {
  expect_error("", {"tokenizer.keep_eos=maybe"}, {"tokenizer.keep_eos expects true or false"});
}
TEST(ConfigErrors, BadDuration) {
  expect_error("", {"run.max_duration=ten minutes"}, {"run.max_duration expects a duration"});
}
TEST(ConfigErrors, BadCheckpointInterval) {
  expect_error("train:\n  checkpoint_every: 2.5\n", {},
               {"config.yaml:",
                "train.checkpoint_every expects a number of steps (500) or a "
                "duration (90s, 30m, 2h)",
                "found '2.5'"});
  expect_error("", {"train.checkpoint_every=soon"}, {"train.checkpoint_every expects"});
}
TEST(Config, CheckpointIntervalIsStepsOrADurationAndOffByDefault) {
  EXPECT_TRUE(parse_steps_or_duration(load_config("", {}).train.checkpoint_every).off());
  EXPECT_EQ(load_config("", {"train.checkpoint_every=500"}).train.checkpoint_every, "500");
  EXPECT_EQ(load_config("", {"train.checkpoint_every=30m"}).train.checkpoint_every, "30m");
  EXPECT_EQ(load_config("", {"train.checkpoint_every="}).train.checkpoint_every, "");
  // Neither the interval nor the accumulation changes what a checkpoint's run computes.
  const std::string base = config_result_hash(load_config("", {}));
  EXPECT_EQ(config_result_hash(load_config("", {"train.checkpoint_every=2h"})), base);
  EXPECT_EQ(config_result_hash(load_config("", {"train.accumulation_steps=4"})), base);
  expect_error("", {"train.accumulation_steps=0"}, {"train.accumulation_steps expects"});
}
TEST(ConfigErrors, YamlSyntaxErrorGivesLine) {
  expect_error("run:\n  seed: 1\n  dir: [unclosed\n", {}, {"config.yaml:", "YAML syntax error"});
}
TEST(ConfigErrors, SectionGivenAScalar) {
  expect_error("train: 5\n", {}, {"'train' is a section"});
}
TEST(ConfigErrors, ScalarGivenAMapping) {
  expect_error("train:\n  patience:\n    a: 1\n", {},
               {"train.patience expects an integer", "found 'a mapping'"});
}
TEST(ConfigErrors, OverrideWithoutEquals) {
  expect_error("", {"train.patience"}, {"expected dotted.key=value"});
}
TEST(ConfigErrors, OverrideUnknownKey) {
  expect_error("", {"train.lr_mx=1"}, {"override 'train.lr_mx=1'", "did you mean 'train.lr_max'"});
}
TEST(ConfigErrors, OverrideOfASection) {
  expect_error("", {"train=3"}, {"'train' is a section"});
}
TEST(ConfigErrors, CrossKeyRule) {
  expect_error("", {"train.lr_min=1", "train.lr_max=0.5"},
               {"the overrides: train.lr_min (1) must not exceed train.lr_max (0.5)"});
  // An override's value is not blamed on the file alone.
  expect_error("train:\n  patience: 3\n", {"run.dir="},
               {"config.yaml with its overrides: run.dir must not be empty"});
}
TEST(ConfigErrors, TopLevelNotAMapping) {
  expect_error("- a\n- b\n", {}, {"expected a mapping of sections"});
}
TEST(ConfigErrors, MissingConfigFile) {
  try {
    load_config("/nonexistent/config.yaml", {});
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--config: file not found: /nonexistent/config.yaml"),
              std::string::npos);
  }
}
// An unclosed list was split on its comma into the items "[a" and "b".
TEST(ConfigErrors, AnUnclosedListOverrideIsRefused) {
  expect_error("", {"data.train_label_fields=[a, b"},
               {"override 'data.train_label_fields=[a, b'", "the list is not valid YAML"});
  expect_error("", {"data.train_label_fields=[a, b]]"},
               {"override 'data.train_label_fields=[a, b]]'", "the list is not valid YAML"});
  EXPECT_EQ(load_config("", {"data.train_label_fields=a, b"}).data.train_label_fields,
            (std::vector<std::string>{"a", "b"}));
}
// Adam's epsilon 0 turned every parameter without a gradient into 0/0 = NaN.
TEST(ConfigErrors, AnAdamEpsilonOfZeroIsRefused) {
  expect_error("", {"train.adam_epsilon=0"},
               {"train.adam_epsilon expects a number in (0, 1]", "found '0'"});
  EXPECT_DOUBLE_EQ(load_config("", {"train.adam_epsilon=1e-12"}).train.adam_epsilon, 1e-12);
}
// 2^63 - 1 seconds was taken and logged as a budget of "-2562047788015215h-30m-8s".
TEST(ConfigErrors, ADurationPastThirtyYearsIsRefused) {
  expect_error("", {"run.max_duration=9223372036854775807"},
               {"run.max_duration expects a duration", "in [0, 1000000000]"});
  expect_error("", {"dist.collective_timeout=20000d"}, {"dist.collective_timeout", "20000d"});
  EXPECT_DOUBLE_EQ(load_config("", {"run.max_duration=1000000000"}).run.max_duration, 1e9);
}
// A NUL in a path cut it short ("data/test.csv\0.old" loaded data/test.csv); a list naming an
// item twice was taken as it stood.
TEST(ConfigErrors, ANulInTextAndAListItemGivenTwiceAreRefused) {
  expect_error("data:\n  test_csv: \"data/test.csv\\x00.old\"\n", {},
               {"data.test_csv holds a NUL character after 'data/test.csv'"});
  expect_error("run:\n  dir: \"run1\\0zzz\"\n", {}, {"run.dir holds a NUL character"});
  expect_error("", {"data.train_label_fields=[toxic, insult, toxic]"},
               {"data.train_label_fields lists 'toxic' twice"});
  expect_error("", {"run.max_duration=30m1h"}, {"run.max_duration expects a duration", "30m1h"});
}
TEST(ConfigErrors, ATabInTheIndentationIsNamed) {
  expect_error("train:\n  patience: 3\n\tlr_max: 1e-3\n", {},
               {"YAML syntax error", "line 3 indents with a tab, and YAML indents with spaces"});
  // A comment indented with a tab is not what YAML refused: the tab that is comes after it.
  expect_error("train:\n\t# a comment\n  patience: 3\n\tlr_max: 1e-3\n", {},
               {"YAML syntax error", "line 4 indents with a tab"});
}
TEST(ConfigErrors, EmptyListRejected) {
  expect_error("", {"data.train_label_fields=[]"},
               {"data.train_label_fields expects a list of strings"});
}

TEST(ConfigInputs, MissingInputFileNamesKeyAndPath) {
  Config c = load_config("", {"data.train_csv=/nope/train.csv"});
  try {
    check_inputs(c, {"data"});
    FAIL();
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "data.train_csv: file not found: /nope/train.csv");
  }
}

TEST(ConfigInputs, OnlyTheSectionsAskedForAreChecked) {
  test::TempDir dir;
  std::string model = dir.write("spm.model", "x");
  Config c = load_config("", {"data.train_csv=/nope/train.csv", "tokenizer.model=" + model});
  EXPECT_NO_THROW(check_inputs(c, {"tokenizer"}));
  EXPECT_THROW(check_inputs(c, {"data"}), UserError);
}

TEST(ConfigInputs, DirectoryWhereFileExpected) {
  test::TempDir dir;
  Config c = load_config("", {"tokenizer.model=" + dir.path()});
  try {
    check_inputs(c, {"tokenizer"});
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory, expected a file"), std::string::npos);
  }
}

// Enumerations are parsed once, when the configuration loads; their names round-trip.
TEST(Config, TheReferenceConfigSpendsTimeOnlyWhereTheNotebookDoes) {
  // The notebook computes no AUC per epoch and projects the labeled set alone before training;
  // the defaults (every existing run) keep both.
  const Config c = load_config(std::string(SX_SOURCE_DIR) + "/configs/xlmr-base-jigsaw.yaml", {});
  EXPECT_EQ(c.data.pair_sampler, PairSampler::kNotebook);
  EXPECT_FALSE(c.train.epoch_auc);
  EXPECT_TRUE(c.export_.before_training);
  EXPECT_FALSE(c.export_.before_training_test);
  EXPECT_TRUE(default_config().train.epoch_auc);
  EXPECT_TRUE(default_config().export_.before_training_test);
}

TEST(Config, EnumerationsParseOnceAndRoundTrip) {
  const Config c = load_config("", {"dist.grad_dtype=bf16", "model.attention=sdpa",
                                    "dist.stop_signal=USR2", "data.pair_sampler=balanced"});
  EXPECT_EQ(c.dist.grad_dtype, WireType::kBFloat16);
  EXPECT_EQ(c.model.attention, Attention::kSdpa);
  EXPECT_EQ(c.dist.stop_signal, StopSignal::kUsr2);
  EXPECT_EQ(c.data.pair_sampler, PairSampler::kBalanced);
  EXPECT_EQ(name_of(c.dist.grad_dtype), "bf16");
  EXPECT_EQ(parse_enum<LogLevel>("warn", "run.log_level"), LogLevel::kWarn);
  EXPECT_THROW(parse_enum<LogLevel>("loud", "run.log_level"), UserError);
  // The resolved YAML spells them as the configuration does, so it loads again.
  test::TempDir dir;
  const Config back = load_config(dir.write("resolved.yaml", config_to_yaml(c)), {});
  EXPECT_EQ(config_result_hash(back), config_result_hash(c));
  EXPECT_EQ(back.dist.stop_signal, StopSignal::kUsr2);
}

// train.graph_bucket_tokens: 256 by default; a multiple of 64 from 64 up, else one line naming
// the key and what was found.
TEST(ConfigRules, GraphBucketTokensIsAMultipleOf64) {
  EXPECT_EQ(default_config().train.graph_bucket_tokens, 256);
  EXPECT_EQ(load_config("", {"train.graph_bucket_tokens=128"}).train.graph_bucket_tokens, 128);
  // Checked where the value is read, so the line names where it came from: the file's line, or
  // the override that set it over the file's valid one.
  const std::string expects =
      "train.graph_bucket_tokens expects an integer in [64, 16384], a multiple of 64, found ";
  expect_error("train:\n  graph_bucket_tokens: 100\n", {}, {"config.yaml:2", expects + "'100'"});
  expect_error("train:\n  graph_bucket_tokens: 128\n", {"train.graph_bucket_tokens=70"},
               {"override 'train.graph_bucket_tokens=70'", expects + "'70'"});
  expect_error("", {"train.graph_bucket_tokens=32"}, {expects + "'32'"});
  expect_error("", {"train.graph_bucket_tokens=0"}, {expects + "'0'"});
  expect_error("", {"train.graph_bucket_tokens=16448"}, {expects + "'16448'"});
}

// train.graph_allreduce: inside runs only where graphs run with several ranks over NCCL;
// elsewhere one warning line says why it is not used (never an error), and after, the
// default, says nothing.
TEST(ConfigRules, GraphAllReduceInsideNeedsGraphsAndSeveralRanksOverNccl) {
  EXPECT_EQ(default_config().train.graph_allreduce, GraphAllReduce::kAfter);
  Platform gpu;
  gpu.device = "cuda:0", gpu.cuda = true, gpu.sdpa = true, gpu.nccl = true;
  gpu.flash_attention = true, gpu.cuda_graphs = true, gpu.world = 2;
  Config c = load_config("", {"train.cuda_graphs=true", "train.graph_allreduce=inside"});
  EXPECT_EQ(c.train.graph_allreduce, GraphAllReduce::kInside);
  EXPECT_TRUE(graph_allreduce_inside(c, gpu));
  EXPECT_TRUE(check_platform_rules(c, gpu, true).empty());
  auto warned = [&](const Config& config, const Platform& p, const std::string& why) {
    EXPECT_FALSE(graph_allreduce_inside(config, p)) << why;
    int lines = 0;
    for (const std::string& w : check_platform_rules(config, p, true))
      if (w.rfind("train.graph_allreduce: inside not used", 0) == 0) {
        ++lines;
        EXPECT_NE(w.find(why), std::string::npos) << w;
        EXPECT_EQ(w.find('\n'), std::string::npos) << w;
      }
    EXPECT_EQ(lines, 1) << why;
  };
  Platform one = gpu;
  one.world = 1;
  warned(c, one, "one rank");
  Platform cpu;  // MPI on the CPU: no graphs
  cpu.world = 2;
  warned(c, cpu, "CUDA graphs are not used");
  warned(load_config("", {"train.graph_allreduce=inside"}), gpu, "train.cuda_graphs: true");
  c.train.graph_allreduce = GraphAllReduce::kAfter;
  EXPECT_FALSE(graph_allreduce_inside(c, gpu));
  EXPECT_TRUE(check_platform_rules(c, cpu, true).size() == 1);  // cuda_graphs' own line only
}

// Retired keys: their surviving value still loads (an older config.resolved.yaml), any other
// is one line naming what replaces it.
TEST(ConfigErrors, RetiredKeysNameTheirReplacement) {
  EXPECT_NO_THROW(load_config("", {"model.layout=packed", "tokenizer.share_node=false"}));
  test::TempDir dir;
  EXPECT_NO_THROW(load_config(
      dir.write("old.yaml", "model:\n  layout: packed\ntokenizer:\n  share_node: no\n"), {}));
  expect_error("model:\n  layout: padded\n", {},
               {"config.yaml:2", "model.layout was removed", "always packed", "found 'padded'"});
  expect_error("", {"tokenizer.share_node=true"},
               {"tokenizer.share_node was removed", "found 'true'"});
}

// model.fused_kernels runs only where everything it needs is there; elsewhere training warns in
// one line why it is not used, and nothing else changes.
TEST(ConfigRules, FusedKernelsNeedACudaReplicaTheKernelsAndBf16WithAnFp32Residual) {
  Config c = load_config("", {"model.fused_kernels=true", "model.autocast_bf16=true"});
  Platform gpu;
  gpu.device = "cuda:0", gpu.cuda = true, gpu.nccl = true, gpu.fused_kernels = true;
  EXPECT_TRUE(fused_kernels_usable(c, gpu));
  EXPECT_TRUE(check_platform_rules(c, gpu, true).empty());
  auto warned = [&](const Config& config, const Platform& p) {
    EXPECT_FALSE(fused_kernels_usable(config, p));
    const auto warnings = check_platform_rules(config, p, true);
    return warnings.size() == 1 ? warnings[0] : "(" + std::to_string(warnings.size()) + ")";
  };
  Platform no_kernels = gpu;
  no_kernels.fused_kernels = false;
  EXPECT_EQ(warned(c, no_kernels),
            "model.fused_kernels: not used, this build has no fused CUDA kernels (build against "
            "a libtorch with CUDA: launch/build-cuda.sh)");
  Config residual = load_config(
      "", {"model.fused_kernels=true", "model.autocast_bf16=true", "model.residual_dtype=bf16"});
  EXPECT_NE(warned(residual, gpu).find("fp32 residual stream"), std::string::npos);
  Config fp32 = load_config("", {"model.fused_kernels=true"});
  EXPECT_NE(warned(fp32, gpu).find("model.autocast_bf16: true"), std::string::npos);
  Config cpu_config = load_config("", {"model.fused_kernels=true"});
  EXPECT_NE(warned(cpu_config, Platform{}).find("no fused CUDA kernels"), std::string::npos);
  Platform cpu;
  cpu.fused_kernels = true;
  EXPECT_EQ(warned(cpu_config, cpu), "model.fused_kernels: not used, the replica runs on the CPU");
  EXPECT_FALSE(fused_kernels_usable(default_config(), gpu));  // off by default
}

}  // namespace
}  // namespace sx
