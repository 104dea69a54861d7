// Text helpers with Python's semantics, so lengths and splits match the notebook.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sx::data {

// Drops bytes that are not valid UTF-8 (Python's decode(errors='ignore')); returns how many.
size_t sanitize_utf8(std::string& text);
// Python's str.strip() on UTF-8 text: the view without leading and trailing whitespace
// (str.isspace, Unicode spaces included). No copy: a narrower view of the same bytes.
std::string_view strip_python(std::string_view text);
// True when the bytes are valid UTF-8 (sanitize_utf8 would drop nothing).
bool is_valid_utf8(std::string_view text);
// len() of the text as a Python str: the number of code points (valid UTF-8 assumed).
size_t count_code_points(std::string_view text);

// Python 3's `re.findall(r'\w+|[^\w\s]+', text)`, i.e. NLTK's wordpunct_tokenize: runs of
// word characters (letters and numbers of every script, and '_'; combining marks are not
// word characters) or runs of other non-space characters. Whitespace is what str.isspace
// accepts. The views point into `text`.
std::vector<std::string_view> wordpunct_tokenize(std::string_view text);

// The same words one at a time, without allocating (a tokenizer that stops at max_len reads
// no further): `WordpunctWords words(text); for (std::string_view w; words.next(w);) ...`.
class WordpunctWords {
 public:
  explicit WordpunctWords(std::string_view text) : text_(text) {}
  bool next(std::string_view& word);

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

bool is_python_word_char(char32_t cp);
bool is_python_space(char32_t cp);

}  // namespace sx::data
