#include "data/synth.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "data/csv_reader.h"

namespace sx::data {
namespace {

// Per-language vocabularies. Toxic texts carry insults; some insults are shared across
// languages (as loan words and symbols are in real comments), which is what lets a model
// trained on English pairs tell toxic from normal in the other languages too.
struct Vocabulary {
  std::vector<const char*> normal;
  std::vector<const char*> toxic;
};

const std::vector<const char*> kSharedToxic = {"idiot", "stupid", "loser", "moron", "f*ck",
                                               "!!!",   "trash",  "clown", "dumb"};

const std::map<std::string, Vocabulary>& vocabularies() {
  static const std::map<std::string, Vocabulary> v = {
      {"en",
       {{"the",     "article",     "city",       "council", "people",  "think",     "good",
         "policy",  "vote",        "tax",        "school",  "water",   "road",      "thanks",
         "agree",   "interesting", "point",      "data",    "report",  "family",    "local",
         "money",   "business",    "history",    "because", "should",  "would",     "more",
         "time",    "year",        "government", "plan",    "and",     "with",      "about",
         "comment", "news",        "story",      "public",  "support", "question",  "answer",
         "read",    "new",         "state",      "law",     "work",    "community", "health",
         "election"},
        {"idiot", "stupid", "moron", "pathetic", "loser", "disgusting", "scum", "hate", "shut up",
         "garbage", "dumb", "clown", "ignorant", "trash"}}},
      {"es",
       {{"el",      "artículo",   "ciudad",   "gente",   "pienso",  "bueno",       "política",
         "voto",    "escuela",    "agua",     "gracias", "acuerdo", "interesante", "punto",
         "familia", "dinero",     "historia", "porque",  "tiempo",  "año",         "gobierno",
         "plan",    "con",        "sobre",    "noticia", "página",  "usuario",     "discusión",
         "fuente",  "referencia", "enlace",   "edición"},
        {"idiota", "estúpido", "imbécil", "basura", "asqueroso", "cállate", "payaso", "tonto",
         "patético"}}},
      {"it",
       {{"il",       "articolo", "città",   "gente",   "penso",   "buono",        "politica",
         "voto",     "scuola",   "acqua",   "grazie",  "accordo", "interessante", "punto",
         "famiglia", "soldi",    "storia",  "perché",  "tempo",   "anno",         "governo",
         "piano",    "con",      "sulla",   "notizia", "pagina",  "utente",       "discussione",
         "fonte",    "voce",     "modifica"},
        {"idiota", "stupido", "cretino", "spazzatura", "schifoso", "stai zitto", "pagliaccio",
         "scemo", "patetico"}}},
      {"tr",
       {{"bu",       "makale", "şehir",     "insanlar", "düşünüyorum", "iyi",
         "politika", "oy",     "okul",      "su",       "teşekkürler", "katılıyorum",
         "ilginç",   "nokta",  "aile",      "para",     "tarih",       "çünkü",
         "zaman",    "yıl",    "hükümet",   "plan",     "ile",         "hakkında",
         "haber",    "sayfa",  "kullanıcı", "tartışma", "kaynak",      "düzenleme"},
        {"aptal", "salak", "gerizekalı", "çöp", "iğrenç", "kes sesini", "palyaço", "ahmak",
         "zavallı"}}},
      {"ru",
       {{"эта",       "статья",        "город",  "люди",     "думаю",    "хорошо",
         "политика",  "голос",         "школа",  "вода",     "спасибо",  "согласен",
         "интересно", "семья",         "деньги", "история",  "потому",   "время",
         "год",       "правительство", "план",   "страница", "источник", "правка"},
        {"идиот", "тупой", "дебил", "мусор", "мерзкий", "заткнись", "клоун", "дурак"}}},
      {"fr",
       {{"le",      "article", "ville",    "gens",  "pense",  "bon",         "politique",
         "vote",    "école",   "eau",      "merci", "accord", "intéressant", "point",
         "famille", "argent",  "histoire", "parce", "temps",  "année",       "gouvernement",
         "plan",    "avec",    "sur",      "page",  "source"},
        {"idiot", "stupide", "crétin", "ordure", "dégoûtant", "tais-toi", "clown", "abruti",
         "pathétique"}}},
      {"pt",
       {{"o",       "artigo",   "cidade",   "pessoas",  "penso",  "bom",          "política",
         "voto",    "escola",   "água",     "obrigado", "acordo", "interessante", "ponto",
         "família", "dinheiro", "história", "porque",   "tempo",  "ano",          "governo",
         "plano",   "com",      "sobre",    "página",   "fonte"},
        {"idiota", "estúpido", "imbecil", "lixo", "nojento", "cala a boca", "palhaço", "burro",
         "patético"}}},
  };
  return v;
}

class CsvWriter {
 public:
  explicit CsvWriter(const std::string& path) : file_(path) {}
  void field(const std::string& value, bool last = false) {
    bool quote = value.find_first_of(",\"\n\r") != std::string::npos;
    if (quote) {
      file_.put('"');
      for (char c : value) {
        if (c == '"') file_.put('"');
        file_.put(c);
      }
      file_.put('"');
    } else {
      file_.write(value);
    }
    file_.put(last ? '\n' : ',');
  }
  void close() { file_.close(); }

 private:
  files::FileWriter file_;
};

// Writes `path` atomically (files::write_atomically) with the rows `fill` gives a CsvWriter;
// without `overwrite`, a file another process wrote there meanwhile is left as it is.
void write_csv(const std::string& path, bool overwrite,
               const std::function<void(CsvWriter&)>& fill) {
  try {
    files::write_atomically(
        path,
        [&](const std::string& tmp) {
          CsvWriter out(tmp);
          fill(out);
          out.close();
        },
        overwrite ? files::FileSet::Replace::kAllowed : files::FileSet::Replace::kRefuse);
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    throw UserError(std::string("--out: ") + e.what());
  }
}

// A comment of `lang`: lognormal word count (median ~25 words, long tail, a few very short
// ones), sentences with punctuation, sometimes a line break or a quotation, and for toxic
// ones a few insults mixed in.
std::string make_comment(Rng& rng, const std::string& lang, bool toxic) {
  const Vocabulary& vocab = vocabularies().at(lang);
  double u1 = std::max(rng.uniform(), 1e-12), u2 = rng.uniform();
  double normal = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  int words = static_cast<int>(std::exp(3.2 + 0.9 * normal));
  if (rng.below(50) == 0) words = 1 + static_cast<int>(rng.below(2));  // very short comments
  words = std::max(1, std::min(words, 220));
  int insults = toxic ? 1 + static_cast<int>(rng.below(std::min(4, 1 + words / 6))) : 0;
  std::string text;
  bool sentence_start = true;
  for (int w = 0; w < words; ++w) {
    std::string word;
    if (insults > 0 &&
        rng.below(static_cast<uint64_t>(words - w)) < static_cast<uint64_t>(insults)) {
      --insults;
      word = rng.below(3) == 0 ? kSharedToxic[rng.below(kSharedToxic.size())]
                               : vocab.toxic[rng.below(vocab.toxic.size())];
    } else {
      word = vocab.normal[rng.below(vocab.normal.size())];
    }
    if (sentence_start && !word.empty() && word[0] >= 'a' && word[0] <= 'z') word[0] -= 32;
    if (!text.empty()) text += ' ';
    text += word;
    sentence_start = false;
    uint64_t r = rng.below(100);
    if (w + 1 < words && r < 7) {
      text += r < 5 ? "," : (r == 5 ? "." : "?");
      sentence_start = r >= 5;
    }
  }
  text += toxic && rng.below(3) == 0 ? "!" : ".";
  uint64_t extra = rng.below(100);
  if (extra < 4)
    text += "\n\n" + std::string(vocab.normal[rng.below(vocab.normal.size())]) + ".";
  else if (extra < 7)
    text = "\"" + text + "\" " + vocab.normal[0];
  return text;
}

std::string label_value(Rng& rng, bool toxic, double scale = 1.0) {
  double v = toxic ? 0.5 + 0.5 * rng.uniform() : 0.45 * rng.uniform() * rng.uniform();
  v *= scale;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Creates out_dir and names the three files; without `overwrite`, files already there are a
// UserError (nothing written).
SynthSummary prepare_outputs(const std::string& out_dir, bool overwrite) {
  try {
    files::create_directories(out_dir);
  } catch (const std::exception& e) {
    throw UserError(std::string("--out: ") + e.what());
  }
  SynthSummary summary;
  summary.train_csv = files::join(out_dir, "jigsaw-unintended-bias-train.csv");
  summary.multilingual_csv = files::join(out_dir, "validation.csv");
  summary.test_csv = files::join(out_dir, "test.csv");
  if (!overwrite) {
    std::string present;
    for (const auto* path : {&summary.train_csv, &summary.multilingual_csv, &summary.test_csv})
      if (files::exists(*path)) present += (present.empty() ? "" : ", ") + *path;
    if (!present.empty())
      throw UserError("--out: " + present +
                      " already exists; pass --force to overwrite, or choose another --out");
  }
  return summary;
}

// Where the files' texts come from. `comment(rng, lang, toxic)` gives one text of `lang`;
// the training file asks with lang "" (its own language: English for the synthesizer).
struct CommentSource {
  std::vector<std::string> multilingual_langs;  // validation.csv's languages
  std::vector<std::string> test_langs;          // test.csv's
  std::function<std::string(Rng&, const std::string& lang, bool toxic)> comment;
};

// The columns of the multilingual competition's jigsaw-unintended-bias-train.csv.
const std::vector<std::string>& identity_columns() {
  static const std::vector<std::string> identity = {"asian",
                                                    "atheist",
                                                    "bisexual",
                                                    "black",
                                                    "buddhist",
                                                    "christian",
                                                    "female",
                                                    "heterosexual",
                                                    "hindu",
                                                    "homosexual_gay_or_lesbian",
                                                    "intellectual_or_learning_disability",
                                                    "jewish",
                                                    "latino",
                                                    "male",
                                                    "muslim",
                                                    "other_disability",
                                                    "other_gender",
                                                    "other_race_or_ethnicity",
                                                    "other_religion",
                                                    "other_sexual_orientation",
                                                    "physical_disability",
                                                    "psychiatric_or_mental_illness",
                                                    "transgender",
                                                    "white"};
  return identity;
}

void write_train_header(CsvWriter& out) {
  out.field("id");
  out.field("comment_text");
  for (const char* f :
       {"toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"})
    out.field(f);
  for (const auto& f : identity_columns()) out.field(f);
  for (const char* f :
       {"created_date", "publication_id", "parent_id", "article_id", "rating", "funny", "wow",
        "sad", "likes", "disagree", "sexual_explicit", "identity_annotator_count"})
    out.field(f);
  out.field("toxicity_annotator_count", true);
}

// One row of the training file after its text: labels and Jigsaw's other columns.
void write_train_row_tail(CsvWriter& out, Rng& rng, bool toxic) {
  // toxic carries the label; the sub-type scores are smaller, as in Jigsaw.
  out.field(label_value(rng, toxic));
  for (double scale : {0.2, 0.6, 0.3, 0.8, 0.2}) {
    const bool subtype = toxic && rng.below(4) == 0;
    out.field(label_value(rng, subtype, scale));
  }
  bool annotated = rng.below(4) == 0;
  for (size_t k = 0; k < identity_columns().size(); ++k) out.field(annotated ? "0.0" : "");
  char date[64];
  const int month = 1 + int(rng.below(12)), day = 1 + int(rng.below(28));
  const int minute = int(rng.below(60));
  std::snprintf(date, sizeof date, "2016-%02d-%02d 10:%02d:00.000000+00", month, day, minute);
  out.field(date);
  out.field(std::to_string(rng.below(100)));
  out.field("");
  out.field(std::to_string(100000 + rng.below(900000)));
  out.field(rng.below(10) ? "approved" : "rejected");
  for (int k = 0; k < 5; ++k) out.field(std::to_string(rng.below(3)));
  out.field("0.0");
  out.field(annotated ? "4" : "0");
  out.field(std::to_string(4 + rng.below(6)), true);
}

// The three files from `source`; deterministic from the seed.
SynthSummary write_jigsaw(const std::string& out_dir, size_t rows, uint64_t seed, int toxic_percent,
                          bool overwrite, const CommentSource& source) {
  SynthSummary summary = prepare_outputs(out_dir, overwrite);
  Rng rng(mix_seed({seed, 0x5717}));
  write_csv(summary.train_csv, overwrite, [&](CsvWriter& out) {
    write_train_header(out);
    for (size_t i = 0; i < rows; ++i) {
      bool toxic = static_cast<int>(rng.below(100)) < toxic_percent;
      out.field(std::to_string(59848 + i));
      out.field(source.comment(rng, "", toxic));
      write_train_row_tail(out, rng, toxic);
      ++summary.train_rows;
    }
  });
  write_csv(summary.multilingual_csv, overwrite, [&](CsvWriter& out) {
    for (const char* f : {"id", "comment_text", "lang"}) out.field(f);
    out.field("toxic", true);
    const size_t per_language = std::max<size_t>(20, rows / 100);
    size_t id = 0;
    for (const std::string& lang : source.multilingual_langs) {
      const size_t n = lang == "tr" ? per_language + per_language / 5 : per_language;
      size_t toxic_rows = 0;
      for (size_t i = 0; i < n; ++i) {
        bool toxic = rng.below(100) < 15;
        // Every language has both labels (training and evaluate need them): the last row takes
        // the label none had. The files of a seed that never drew such a language are unchanged.
        if (i + 1 == n && (toxic_rows == 0 || toxic_rows == n - 1)) toxic = toxic_rows == 0;
        toxic_rows += toxic ? 1 : 0;
        out.field(std::to_string(id++));
        out.field(source.comment(rng, lang, toxic));
        out.field(lang);
        out.field(toxic ? "1" : "0", true);
        ++summary.multilingual_rows;
      }
    }
  });
  write_csv(summary.test_csv, overwrite, [&](CsvWriter& out) {
    for (const char* f : {"id", "content"}) out.field(f);
    out.field("lang", true);
    const size_t per_language = std::max<size_t>(20, rows / 120);
    size_t id = 0;
    for (const std::string& lang : source.test_langs) {
      for (size_t i = 0; i < per_language; ++i) {
        out.field(std::to_string(id++));
        out.field(source.comment(rng, lang, rng.below(100) < 15));
        out.field(lang, true);
        ++summary.test_rows;
      }
    }
  });
  return summary;
}

// The texts of a lang,text CSV, by language (in file order), and every text in one list.
struct TextPool {
  std::map<std::string, std::vector<std::string>> by_lang;
  std::vector<const std::string*> all;
};

TextPool read_text_pool(const std::string& path) {
  if (!files::exists(path)) throw UserError(path + ": no such file, expected a lang,text CSV");
  CsvReader reader(path);
  CsvRecord record;
  TextPool pool;
  if (!reader.next(record) || record.fields.size() != 2 || record.fields[0] != "lang" ||
      record.fields[1] != "text")
    throw UserError(path + ":1: expected the header lang,text");
  while (reader.next(record)) {
    if (record.fields.size() != 2 || record.unterminated_quote || record.field_too_long)
      throw UserError(path + ":" + std::to_string(record.line) + ": expected two fields lang,text");
    if (!record.fields[1].empty())
      pool.by_lang[record.fields[0]].push_back(std::move(record.fields[1]));
  }
  for (const auto& [lang, texts] : pool.by_lang)
    for (const std::string& t : texts) pool.all.push_back(&t);
  if (pool.all.empty()) throw UserError(path + ": no texts");
  return pool;
}

}  // namespace

SynthSummary write_synthetic_jigsaw(const std::string& out_dir, size_t rows, uint64_t seed,
                                    int toxic_percent, bool overwrite) {
  CommentSource source{{"es", "it", "tr"},
                       {"es", "fr", "it", "pt", "ru", "tr"},
                       [](Rng& rng, const std::string& lang, bool toxic) {
                         return make_comment(rng, lang.empty() ? "en" : lang, toxic);
                       }};
  return write_jigsaw(out_dir, rows, seed, toxic_percent, overwrite, source);
}

SynthSummary write_text_jigsaw(const std::string& out_dir, const std::string& texts_csv,
                               size_t rows, uint64_t seed, bool overwrite) {
  const TextPool pool = read_text_pool(texts_csv);
  CommentSource source;
  for (const auto& [lang, texts] : pool.by_lang)
    if (lang != "en") source.multilingual_langs.push_back(lang);
  source.test_langs = source.multilingual_langs;
  // The training file: every text once per pass, in an order reshuffled for each pass.
  Rng order_rng(mix_seed({seed, 0x7e87}));
  std::vector<const std::string*> order;
  size_t next = 0;
  source.comment = [&](Rng& rng, const std::string& lang, bool) -> std::string {
    if (!lang.empty()) {
      const auto& texts = pool.by_lang.at(lang);
      return texts[rng.below(texts.size())];
    }
    if (next == order.size()) {
      order = pool.all;
      order_rng.shuffle(order);
      next = 0;
    }
    return *order[next++];
  };
  return write_jigsaw(out_dir, rows ? rows : pool.all.size(), seed, 8, overwrite, source);
}

}  // namespace sx::data
