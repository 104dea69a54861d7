// The CSV reader: RFC 4180 quoting, line endings, and bounded memory on hostile input.
#include "data/csv_reader.h"

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

}  // namespace
}  // namespace sx::data
