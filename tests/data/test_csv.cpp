// The CSV reader: RFC 4180 quoting, line endings, and bounded memory on hostile input.
#include "data/csv_reader.h"

#include <cstring>

#include "core/rng.h"
#include "data/csv_parser.h"
#include "fuzz/fuzz_bodies.h"
#include "test_util.h"

namespace sx::data {
namespace {

std::vector<CsvRecord> read_all(std::string_view text, CsvLimits limits = {}) {
  CsvReader reader(CsvReader::InMemory{}, text, limits);
  std::vector<CsvRecord> out;
  CsvRecord r;
  while (reader.next(r)) out.push_back(r);
  return out;
}

TEST(Csv, QuotedCommasNewlinesAndDoubledQuotes) {
  auto rows = read_all("id,text\n1,\"a, b\"\n2,\"line1\nline2\"\n3,\"say \"\"hi\"\"\"\n4,plain\n");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1].fields[1], "a, b");
  EXPECT_EQ(rows[2].fields[1], "line1\nline2");
  EXPECT_EQ(rows[3].fields[1], "say \"hi\"");
  EXPECT_EQ(rows[4].fields[1], "plain");
  EXPECT_EQ(rows[3].line, 5u);  // physical line numbers count embedded newlines
  EXPECT_EQ(rows[4].line, 6u);
}

TEST(Csv, CrLfAndLoneCrEndRecordsAndBlankLinesAreSkipped) {
  auto rows = read_all("a,b\r\n1,2\r\n\r\n3,4\r5,6");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(rows[3].fields, (std::vector<std::string>{"5", "6"}));
  EXPECT_EQ(rows[2].line, 4u);
}

TEST(Csv, ByteOrderMarkIsNotPartOfTheHeader) {
  auto rows = read_all("\xEF\xBB\xBFid,x\n1,2\n");
  EXPECT_EQ(rows[0].fields[0], "id");
}

TEST(Csv, EmptyFieldsAndTrailingComma) {
  auto rows = read_all("a,b,c\n,,\n1,,\n");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].field_count, 3u);
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"1", "", ""}));
}

TEST(Csv, UnterminatedQuoteIsFlagged) {
  auto rows = read_all("a,b\n1,\"never closed\n2,3\n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[1].unterminated_quote);
}

// A stray quote joins records until the next quote; text after that quote is its sign.
TEST(Csv, TextAfterTheClosingQuoteOfAFieldOverLinesIsFlagged) {
  const std::string text =
      "id,t,l\n0,\"open,it,1\n1,x,it,0\n2,\"q\" tail,it,0\n3,\"a\nb\",it,0\n4,\"q\"tail,it,0\n";
  auto rows = read_all(text);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[1].text_after_quote);  // lines 2-4, one record
  EXPECT_EQ(rows[1].fields[1], "open,it,1\n1,x,it,0\n2,q\" tail");
  EXPECT_FALSE(rows[2].text_after_quote);  // over lines, closed cleanly: a text with a newline
  EXPECT_FALSE(rows[3].text_after_quote);  // text after a quote on one line joins nothing
  EXPECT_EQ(rows[3].fields[1], "qtail");
  auto parsed = fuzz::parse_parallel(text, {}, 3, 2);
  ASSERT_EQ(parsed.size(), 4u);
  EXPECT_TRUE(parsed[1].text_after_quote);
  EXPECT_FALSE(parsed[2].text_after_quote);
  EXPECT_FALSE(parsed[3].text_after_quote);
}

TEST(Csv, HugeFieldIsCutAndFlaggedNotStored) {
  std::string text = "a,b\n1,\"" + std::string(5'000'000, 'x') + "\"\n2,ok\n";
  auto rows = read_all(text, CsvLimits{1000, 16});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[1].field_too_long);
  EXPECT_EQ(rows[1].fields[1].size(), 1000u);
  EXPECT_FALSE(rows[2].field_too_long);
  EXPECT_EQ(rows[2].fields[1], "ok");
}

TEST(Csv, FieldsBeyondTheLimitAreCountedNotStored) {
  auto rows = read_all("a\n" + std::string(10000, ',') + "\n", CsvLimits{100, 8});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].fields.size(), 8u);
  EXPECT_EQ(rows[1].field_count, 10001u);
}

TEST(Csv, FileLargerThanOneChunkReadsTheSameAsMemory) {
  test::TempDir dir;
  std::string text = "id,text\n";
  for (int i = 0; i < 30000; ++i)
    text += std::to_string(i) + ",\"row " + std::to_string(i) +
            ", with \"\"quotes\"\"\nand a newline\"\n";
  std::string path = dir.write("big.csv", text);
  CsvReader file(path), memory(CsvReader::InMemory{}, text);
  CsvRecord a, b;
  size_t n = 0;
  while (file.next(a)) {
    ASSERT_TRUE(memory.next(b));
    ASSERT_EQ(a.fields, b.fields);
    ASSERT_EQ(a.line, b.line);
    ++n;
  }
  EXPECT_FALSE(memory.next(b));
  EXPECT_EQ(n, 30001u);
}

// The parallel parser against the sequential reference, at every chunk size from 1 byte up
// (chunk boundaries inside quotes, between \r and \n, in blank lines, in doubled quotes).
void expect_parallel_equals_sequential(const std::string& text, CsvLimits limits = {},
                                       size_t max_chunk = 64) {
  const auto want = fuzz::parse_sequential(text, limits);
  for (size_t chunk = 1; chunk <= max_chunk; ++chunk) {
    const auto got = fuzz::parse_parallel(text, limits, chunk, 3);
    ASSERT_EQ(got.size(), want.size()) << "chunk " << chunk;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_TRUE(got[i] == want[i])
          << "chunk " << chunk << ", record " << i << " (line " << want[i].line << ")";
  }
}

TEST(CsvParallel, QuotesNewlinesAndCrLfAtEveryChunkBoundary) {
  expect_parallel_equals_sequential(
      "id,text\r\n1,\"a, b\"\r\n2,\"line1\r\nline2\nline3\"\r\n\r\n\n3,\"say "
      "\"\"hi\"\"\"\r4,plain\n"
      "5,\"\"\"\"\"\",x\n6,\"\"\n7,,\n");
}

TEST(CsvParallel, MalformedQuotingResynchronises) {
  // Quotes inside unquoted fields and text after a closing quote make the quote parity lie
  // about where records start; the stitch must still give the sequential result.
  expect_parallel_equals_sequential(
      "a,b\n1,x\"y\n2,\"q\"tail,\"z\n3,\"multi\nline\"\"\"\n4,ab\"\"c\n5,\"unterminated\nat,end");
  expect_parallel_equals_sequential("\xEF\xBB\xBFh\n\"\n\"\"\n\"\r\n,\"\r\"\n");
}

TEST(CsvParallel, HugeFieldIsCutAndFlaggedAsInTheReference) {
  std::string text = "a,b\n1,\"" + std::string(100'000, 'x') + "\"\"\"\n2,ok\n";
  expect_parallel_equals_sequential(text, CsvLimits{1000, 16}, 4);
  auto rows = fuzz::parse_parallel(text, CsvLimits{1000, 16}, 4096, 2);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[1].field_too_long);
  EXPECT_EQ(rows[1].fields[1].size(), 1000u);
}

TEST(CsvParallel, GeneratedFilesEqualTheReference) {
  // Random records built from the troublesome pieces; many files, several chunk sizes.
  const std::vector<std::string> pieces = {"a",    "bc",       ",",         "\"",
                                           "\"\"", "\n",       "\r",        "\r\n",
                                           " ",    "\xC3\xA9", "\"x,\ny\"", "\"\"\"q\"\"\"\n"};
  Rng rng(7);
  for (int file = 0; file < 200; ++file) {
    std::string text;
    const size_t n = 1 + rng.below(80);
    for (size_t i = 0; i < n; ++i) text += pieces[rng.below(pieces.size())];
    expect_parallel_equals_sequential(text, CsvLimits{16, 4}, 12);
  }
  std::string big = "id,text,label\n";  // well-formed, many chunks on many threads
  for (int i = 0; i < 5000; ++i)
    big += std::to_string(i) + ",\"row " + std::to_string(i) + (i % 3 ? "\r\n" : "\n") +
           "with \"\"quotes\"\", commas\"," + std::to_string(i % 2) + (i % 5 ? "\n" : "\r\n");
  const auto want = fuzz::parse_sequential(big, {});
  for (size_t chunk : {7, 100, 4096})
    EXPECT_TRUE(fuzz::parse_parallel(big, {}, chunk, 4) == want) << chunk;
}

TEST(CsvParallel, LongFieldsAcrossScanBlocksEqualTheReference) {
  // The parser scans 16 and 64 bytes at a time: runs of every length put quotes, commas,
  // line breaks and non-ASCII bytes at every offset of a block and across blocks.
  auto run = [](Rng& rng, const char* alphabet, size_t max) {
    std::string s(1 + rng.below(max), ' ');
    for (char& c : s) c = alphabet[rng.below(std::strlen(alphabet))];
    return s;
  };
  Rng rng(13);
  for (int file = 0; file < 300; ++file) {
    std::string text;
    const size_t n = 1 + rng.below(60);
    for (size_t i = 0; i < n; ++i) {
      switch (rng.below(9)) {
        case 0:
          text += run(rng, "abcdefghij klm", 90);
          break;
        case 1:
          text += run(rng, ",,,,,,,a", 70);
          break;
        case 2:
          text += "\"" + run(rng, "abc, \n\r", 120) + "\"";
          break;
        case 3:
          text += "\"" + run(rng, "ab\xC3\xA9\n\"", 80) + "\"";
          break;
        case 4:
          text += run(rng, "\xE2\x82\xAC\xFFxy", 40);
          break;
        case 5:
          text += "\r\n";
          break;
        case 6:
          text += rng.below(2) ? "\n" : "\r";
          break;
        case 7:
          text += "\"\"";
          break;
        default:
          text += ",";
          break;
      }
    }
    const auto want = fuzz::parse_sequential(text, {});
    for (size_t chunk : {3, 61, 4096})
      ASSERT_TRUE(fuzz::parse_parallel(text, {}, chunk, 2) == want)
          << "file " << file << ", chunk " << chunk;
  }
}

}  // namespace
}  // namespace sx::data
