// Loading the Jigsaw files: labels, languages, and every bad-row reason in fail and skip.
#include <cstdio>

#include "core/error.h"
#include "data/jigsaw.h"
#include "data/text.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace sx::data {
namespace {

const LabeledColumns kEnglish{"comment_text", {"toxic", "insult"}, "lang"};

LoadOptions options(BadRows mode) {
  LoadOptions o;
  o.key = "data.train_csv";
  o.bad_rows = mode;
  return o;
}

TEST(Jigsaw, LabelIsMaxOfLabelFieldsAtThreshold) {
  test::TempDir dir;
  auto path = dir.write(
      "t.csv", "id,comment_text,toxic,insult\n1,a text,0.2,0.5\n2,b text,0.49,0.1\n3,c,1,0\n");
  auto c = load_labeled_csv(path, kEnglish, options(BadRows::kFail));
  EXPECT_EQ(c.labels, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(c.langs, (std::vector<std::string>{"en", "en", "en"}));  // no lang column: English
  EXPECT_EQ(c.rows, (std::vector<int64_t>{0, 1, 2}));
}

TEST(Jigsaw, LanguageColumnIsRead) {
  test::TempDir dir;
  auto path = dir.write("v.csv", "id,comment_text,lang,toxic\n0,hola,es,1\n1,ciao,it,0\n");
  auto c = load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, options(BadRows::kFail));
  EXPECT_EQ(c.langs, (std::vector<std::string>{"es", "it"}));
}

TEST(Jigsaw, InvalidUtf8IsDroppedAndCounted) {
  test::TempDir dir;
  auto path = dir.write("t.csv",
                        "comment_text,toxic,insult\nab\xff"
                        "c\xc3,0,0\n");
  LoadReport report;
  auto c = load_labeled_csv(path, kEnglish, options(BadRows::kFail), &report);
  EXPECT_EQ(c.texts[0], "abc");
  EXPECT_EQ(report.invalid_utf8_bytes, 2u);
}

TEST(Jigsaw, TextsAndLanguagesAreStrippedAsPythonStrips) {
  test::TempDir dir;
  auto path = dir.write("v.csv",
                        "comment_text,lang,toxic\n"
                        "\"  hola\xC2\xA0"
                        "amigo \xE3\x80\x80\n\",\" es \",1\n"
                        "\"\xE2\x80\x89\t\",it,0\n"  // only whitespace: empty
                        "ciao,\xC2\xA0,0\n"          // language only whitespace: empty
                        "\"\"\"quoted\"\" \",tr,0\n");
  LoadReport report;
  LoadOptions o = options(BadRows::kSkip);
  auto c = load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, o, &report);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c.texts[0],
            "hola\xC2\xA0"
            "amigo");                             // inner whitespace stays
  EXPECT_EQ(count_code_points(c.texts[0]), 10u);  // lengths are of the stripped text
  EXPECT_EQ(c.langs[0], "es");
  EXPECT_EQ(c.texts[1], "\"quoted\"");
  EXPECT_EQ(report.bad_rows.at("empty text").first_lines, (std::vector<uint64_t>{4}));
  EXPECT_EQ(report.bad_rows.at("empty language").first_lines, (std::vector<uint64_t>{5}));

  XlmrTokenizer tok(
      {test::fixtures_dir() + "/tokenizer/sentencepiece.bpe.model", 32, Pretokenize::kNone, true});
  EXPECT_EQ(tok.encode(c.texts[0]), tok.encode("hola\xC2\xA0"
                                               "amigo"));  // tokens likewise
}

TEST(Jigsaw, ParallelLoadEqualsOneThreadOnAFileOfManyChunks) {
  test::TempDir dir;
  std::string csv = "id,comment_text,toxic,insult\n";
  for (int i = 0; i < 3000; ++i)
    csv += std::to_string(i) + ",\"text " + std::to_string(i) + (i % 7 ? "" : "\nsecond line") +
           (i % 11 ? "" : " \"\"q\"\"") + " \"," + (i % 3 ? "0.1" : "0.9") + ",0" +
           (i % 13 ? "\n" : "\r\n");
  csv += "x,,oops,0\n";  // a bad row at the end
  auto path = dir.write("t.csv", csv);
  LoadOptions one = options(BadRows::kSkip), many = options(BadRows::kSkip);
  one.parallel = {1, 1u << 30};  // one chunk
  many.parallel = {3, 1000};     // ~60 chunks on 3 threads
  LoadReport r1, r2;
  auto a = load_labeled_csv(path, kEnglish, one, &r1);
  auto b = load_labeled_csv(path, kEnglish, many, &r2);
  ASSERT_EQ(a.size(), 3000u);
  EXPECT_EQ(a.texts.views(), b.texts.views());
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(r1.bad_rows.at("label is not a number in [0, 1]").first_lines,
            r2.bad_rows.at("label is not a number in [0, 1]").first_lines);
  EXPECT_EQ(a.texts[14], "text 14\nsecond line");
  EXPECT_EQ(a.texts[22], "text 22 \"q\"");
}

struct BadCase {
  const char* name;
  std::string csv;
  std::string reason;
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << c.name;
}  // readable test output

class JigsawBadRows : public ::testing::TestWithParam<BadCase> {};

TEST_P(JigsawBadRows, FailNamesFileLineAndReasonSkipCountsIt) {
  const BadCase& c = GetParam();
  test::TempDir dir;
  auto path = dir.write("t.csv", c.csv);
  std::string msg =
      test::error_of([&] { load_labeled_csv(path, kEnglish, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("data.train_csv: " + path), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3: " + c.reason), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.bad_rows=skip"), std::string::npos) << msg;

  LoadReport report;
  auto corpus = load_labeled_csv(path, kEnglish, options(BadRows::kSkip), &report);
  EXPECT_EQ(corpus.size(), 2u);  // the good rows survive
  ASSERT_EQ(report.bad_rows.count(c.reason), 1u) << c.reason;
  EXPECT_EQ(report.bad_rows.at(c.reason).count, 1u);
  EXPECT_EQ(report.bad_rows.at(c.reason).first_lines, (std::vector<uint64_t>{3}));
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, JigsawBadRows,
    ::testing::Values(
        BadCase{"FieldCount", "comment_text,toxic,insult\nok one,0,0\nshort,0\nok two,1,1\n",
                "wrong number of fields"},
        BadCase{"EmptyText", "comment_text,toxic,insult\nok one,0,0\n  ,0,0\nok two,1,1\n",
                "empty text"},
        BadCase{"LabelNotNumber", "comment_text,toxic,insult\nok one,0,0\nx,abc,0\nok two,1,1\n",
                "label is not a number in [0, 1]"},
        // An empty value is copied for the message: the first copy of a parsing slot
        // once crashed (an empty copy into an arena without a block).
        BadCase{"LabelEmpty", "comment_text,toxic,insult\nok one,0,0\nx,,0\nok two,1,1\n",
                "label is not a number in [0, 1]"},
        BadCase{"LabelOutOfRange", "comment_text,toxic,insult\nok one,0,0\nx,0,1.5\nok two,1,1\n",
                "label is not a number in [0, 1]"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Jigsaw, UnterminatedQuoteReportsItsLine) {
  test::TempDir dir;
  auto path = dir.write("t.csv", "comment_text,toxic,insult\nok,0,0\n\"open,0,0\n");
  std::string msg =
      test::error_of([&] { load_labeled_csv(path, kEnglish, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("line 3: quoted field not closed before the end of the file"),
            std::string::npos)
      << msg;
}

// A stray quote made one bad record of every line up to the end of the file, reported as
// "1 row (line 7)" while 95 rows were lost; the span is now said.
TEST(Jigsaw, AStrayQuoteNamesTheLinesItsRecordRunsOver) {
  test::TempDir dir;
  std::string text = "id,content,lang\n";
  for (int i = 0; i < 100; ++i)
    text += i == 5 ? "5,\"roto,es\n" : std::to_string(i) + ",texto " + std::to_string(i) + ",es\n";
  auto path = dir.write("test.csv", text);
  LoadReport report;
  auto t = load_test_csv(path, {}, options(BadRows::kSkip), &report);
  EXPECT_EQ(t.size(), 5u);
  const BadRowStat& stat = report.bad_rows.at("quoted field not closed before the end of the file");
  EXPECT_EQ(stat.first_lines, (std::vector<uint64_t>{7}));
  EXPECT_EQ(stat.first_spans, (std::vector<uint64_t>{95}));  // lines 7-101
  std::string msg = test::error_of([&] { load_test_csv(path, {}, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("lines 7-101 (one record: a stray quote?): quoted field not closed"),
            std::string::npos)
      << msg;
  // A quote opened on line 2 takes the two lines after it as well.
  auto two = dir.write("two.csv", "id,content,lang\n1,\"a\nb,es\n2,x,es\n");
  msg = test::error_of([&] { load_test_csv(two, {}, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("lines 2-4 (one record: a stray quote?): quoted field not closed"),
            std::string::npos)
      << msg;
}

// A stray quote that closes at a later quote joined three rows into one with the last one's
// label, reported nowhere (a user's hand-edited file).
TEST(Jigsaw, AStrayQuoteThatClosesLaterIsABadRowNotAJoinedOne) {
  test::TempDir dir;
  auto path = dir.write("ml.csv",
                        "id,comment_text,lang,toxic\n0,\"Questo testo tossico,it,1\n"
                        "1,Un testo normale,it,0\n2,\"Citazione\" finale,it,0\n3,ciao,it,1\n");
  const LabeledColumns columns{"comment_text", {"toxic"}, "lang"};
  std::string msg =
      test::error_of([&] { load_labeled_csv(path, columns, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("lines 2-4 (one record: a stray quote?): text after the closing quote"),
            std::string::npos)
      << msg;
  LoadReport report;
  auto corpus = load_labeled_csv(path, columns, options(BadRows::kSkip), &report);
  EXPECT_EQ(corpus.size(), 1u);
  EXPECT_EQ(report.bad_row_count(), 1u);
}

// Ids are numbers (test/ids, submission.csv): "007" became 7 without a word.
TEST(Jigsaw, TestIdsWithLeadingZerosAreCountedForAWarning) {
  test::TempDir dir;
  auto path = dir.write("test.csv", "id,content,lang\n5,a,es\n007, b,es\n0,c,es\n 0008 ,d,es\n");
  LoadReport report;
  auto t = load_test_csv(path, {}, options(BadRows::kFail), &report);
  EXPECT_EQ(t.ids.to_vector(), (std::vector<int64_t>{5, 7, 0, 8}));
  EXPECT_EQ(report.zero_padded_ids, 2u);
  EXPECT_EQ(report.first_zero_padded, (std::pair<uint64_t, std::string>{3, "007"}));
}

// Every row of a file of 1103 columns was "wrong number of fields (expected 1024, found 1103)",
// and a column past the 1024th "missing" with the whole header listed.
TEST(Jigsaw, AHeaderOfMoreColumnsThanAreReadIsOneLine) {
  test::TempDir dir;
  std::string header = "id,content,lang", row = "1,texto,es";
  for (int i = 0; i < 1100; ++i) header += ",c" + std::to_string(i), row += ",0";
  auto path = dir.write("wide.csv", header + "\n" + row + "\n");
  std::string msg = test::error_of([&] { load_test_csv(path, {}, options(BadRows::kFail)); });
  EXPECT_EQ(msg, "data.train_csv: " + path +
                     ":1: the header has 1103 columns; at most 1024 are read: keep the columns the "
                     "configuration names");
}

TEST(Jigsaw, EmptyLanguageIsABadRow) {
  test::TempDir dir;
  auto path = dir.write("v.csv", "comment_text,lang,toxic\nhola,es,1\nciao,,0\n");
  std::string msg = test::error_of([&] {
    load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, options(BadRows::kFail));
  });
  EXPECT_NE(msg.find("line 3: empty language"), std::string::npos) << msg;
}

TEST(Jigsaw, ALanguageThatIsNotAPlainNameIsABadRow) {
  // A language names an HDF5 group ("es/x" would be a nested path) and a fold.
  test::TempDir dir;
  auto path =
      dir.write("v.csv",
                "comment_text,lang,toxic\nhola,es,1\nhola,es/x,1\nciao,../it,0\nhi,pt-BR,0\n"
                "olá,zh_CN,1\n");
  std::string msg = test::error_of([&] {
    load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, options(BadRows::kFail));
  });
  EXPECT_NE(msg.find("line 3: language is not a plain name ('es/x'; expected letters, digits, "
                     "'-' or '_', at most 32)"),
            std::string::npos)
      << msg;
  LoadReport report;
  auto kept =
      load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, options(BadRows::kSkip), &report);
  EXPECT_EQ(kept.langs, (std::vector<std::string>{"es", "pt-BR", "zh_CN"}));
  EXPECT_EQ(report.bad_rows.at("language is not a plain name").first_lines,
            (std::vector<uint64_t>{3, 4}));
}

TEST(Jigsaw, MissingColumnNamesItAndTheHeader) {
  test::TempDir dir;
  auto path = dir.write("t.csv", "comment_text,toxic\nx,0\n");
  std::string msg =
      test::error_of([&] { load_labeled_csv(path, kEnglish, options(BadRows::kSkip)); });
  EXPECT_NE(msg.find(":1: missing column 'insult'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the header has: comment_text, toxic"), std::string::npos) << msg;
}

// A UTF-16 export (a spreadsheet's "Unicode text") was reported as a missing column with the
// header's raw bytes cut at the first NUL.
TEST(Jigsaw, AUtf16FileIsNamedAsSuch) {
  test::TempDir dir;
  for (const std::string& bom : {std::string("\xFF\xFE"), std::string("\xFE\xFF")}) {
    auto path = dir.write("u.csv", bom + std::string("c\0o\0m\0", 6));
    std::string msg =
        test::error_of([&] { load_labeled_csv(path, kEnglish, options(BadRows::kSkip)); });
    EXPECT_NE(msg.find(":1: the file is UTF-16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected UTF-8"), std::string::npos) << msg;
  }
}

TEST(Jigsaw, EmptyFileAndHeaderOnly) {
  test::TempDir dir;
  auto empty = dir.write("e.csv", "");
  auto header = dir.write("h.csv", "comment_text,toxic,insult\n");
  EXPECT_NE(test::error_of([&] {
              load_labeled_csv(empty, kEnglish, options(BadRows::kFail));
            }).find("the file is empty"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              load_labeled_csv(header, kEnglish, options(BadRows::kFail));
            }).find("no usable rows"),
            std::string::npos);
}

TEST(Jigsaw, MissingFileAndDirectory) {
  test::TempDir dir;
  EXPECT_NE(test::error_of([&] {
              load_labeled_csv(dir.path("none.csv"), kEnglish, options(BadRows::kFail));
            }).find("cannot open"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              load_labeled_csv(dir.path(), kEnglish, options(BadRows::kFail));
            }).find("is a directory"),
            std::string::npos);
}

TEST(Jigsaw, FailListsOnlyTheFirstProblems) {
  test::TempDir dir;
  std::string csv = "comment_text,toxic,insult\n";
  for (int i = 0; i < 20; ++i) csv += "x,bad,0\n";
  auto path = dir.write("t.csv", csv);
  std::string msg =
      test::error_of([&] { load_labeled_csv(path, kEnglish, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("first 5 bad rows (reading stopped there)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("line 8"), std::string::npos) << msg;
}

TEST(Jigsaw, HugeFieldIsABadRowNotAnOutOfMemory) {
  test::TempDir dir;
  std::string csv =
      "comment_text,toxic,insult\nok,0,0\n\"" + std::string(20'000'000, 'y') + "\",0,0\nfine,1,1\n";
  auto path = dir.write("t.csv", csv);
  LoadOptions o = options(BadRows::kSkip);
  o.limits.max_field_bytes = 1 << 20;
  LoadReport report;
  auto c = load_labeled_csv(path, kEnglish, o, &report);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(report.bad_row_count(), 1u);
}

TEST(JigsawTest, IdsContentLanguageAndDuplicates) {
  test::TempDir dir;
  auto path = dir.write("test.csv",
                        "id,content,lang\n0,uno,es\n1,due,it\n1,dup,it\n-4,neg,tr\n2,tres,tr\n");
  LoadOptions o = options(BadRows::kSkip);
  LoadReport report;
  auto t = load_test_csv(path, {}, o, &report);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(t.rows, (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(t.skipped, 2u);  // the ids a submission will lack
  EXPECT_EQ(report.bad_rows.at("duplicate id").first_lines, (std::vector<uint64_t>{4}));
  EXPECT_EQ(report.bad_rows.at("id is not a non-negative integer").first_lines,
            (std::vector<uint64_t>{5}));
  std::string msg = test::error_of([&] { load_test_csv(path, {}, options(BadRows::kFail)); });
  EXPECT_NE(msg.find("line 4: duplicate id (1, first on line 3)"), std::string::npos) << msg;
}

// 19-digit ids were refused though they fit (the limit was 18 digits); past 2^63 - 1 they are not.
TEST(JigsawTest, EveryIdUpTo2To63Minus1IsTaken) {
  test::TempDir dir;
  auto path = dir.write("test.csv",
                        "id,content,lang\n9223372036854775807,uno,es\n1000000000000000000,due,it\n"
                        "9223372036854775808,tre,it\n007,sette,tr\n");
  LoadReport report;
  auto t = load_test_csv(path, {}, options(BadRows::kSkip), &report);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{9223372036854775807LL, 1000000000000000000LL, 7}));
  EXPECT_EQ(report.bad_rows.at("id is not a non-negative integer").first_lines,
            (std::vector<uint64_t>{4}));
}

TEST(JigsawTest, AnEmptyIdIsABadRow) {
  test::TempDir dir;
  auto path = dir.write("test.csv", "id,content,lang\n,uno,es\n1,due,it\n");
  LoadReport report;
  auto t = load_test_csv(path, {}, options(BadRows::kSkip), &report);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{1}));
  EXPECT_EQ(report.bad_rows.at("id is not a non-negative integer").first_lines,
            (std::vector<uint64_t>{2}));
}

TEST(Jigsaw, AFileShrunkWhileItsTextsAreReadEndsWithOneLineNamingIt) {
  // The texts are views of the file's mapping: a file rewritten shorter in place (as `cp` or an
  // editor does) during a run made the next read of a text a SIGBUS crash with a backtrace.
  test::TempDir dir;
  std::string csv = "comment_text,toxic\n";
  for (int i = 0; i < 400; ++i) csv += "text number " + std::to_string(i) + " of the file,0\n";
  const std::string path = dir.write("t.csv", csv);
  const test::ChildResult r = test::run_in_child([&] {
    const LabeledCorpus corpus =
        load_labeled_csv(path, {"comment_text", {"toxic"}, "lang"}, options(BadRows::kFail));
    test::write_file(path, "comment_text,toxic\n");  // replaced in place by a shorter file
    unsigned sum = 0;
    for (std::string_view text : corpus.texts)
      for (char c : text) sum += static_cast<unsigned char>(c);
    std::printf("%u\n", sum);  // not reached
  });
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, kExitUserError);
  EXPECT_EQ(r.err, "siamese-xlmr: error: " + path +
                       " changed on disk while it was being read (now " + "19 bytes, " +
                       std::to_string(csv.size()) +
                       " when opened: truncated or rewritten in place); leave data files "
                       "unchanged while a command uses them (replacing one with mv is safe)\n");
}

}  // namespace
}  // namespace sx::data
