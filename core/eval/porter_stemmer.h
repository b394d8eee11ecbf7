// The Porter stemmer exactly as NLTK's `nltk.stem.porter.PorterStemmer()` in its
// default mode, NLTK_EXTENSIONS — the mode Google's rouge-score uses
// (`rouge_score/tokenizers.py`: `porter.PorterStemmer() if use_stemmer else None`,
// no mode argument, so NOT 'ORIGINAL_ALGORITHM').
//
// NLTK_EXTENSIONS differs from Porter's 1980 paper by: an irregular-forms pool (sky,
// skies -> sky; dying -> die; lying -> lie; tying -> tie; news; innings/inning ->
// inning; outings/outing -> outing; cannings/canning -> canning; howe; proceed;
// exceed; succeed), words of length <= 2 left alone, "ies" -> "ie" for 4-letter
// words, "ied" -> "ie"/"i", y -> i only after a consonant that is not the first
// letter, "alli" handled recursively, bli -> ble, fulli -> ful, logi -> log, and a
// two-letter vowel-consonant stem counting as *o.
//
// Input: a lowercase ASCII word (rouge-score only stems [a-z0-9]+ tokens). Other
// bytes are treated as consonants, as NLTK does for non-vowel characters.
#ifndef QLORAD_CORE_EVAL_PORTER_STEMMER_H_
#define QLORAD_CORE_EVAL_PORTER_STEMMER_H_

#include <string>

namespace qlorad::eval {

std::string PorterStem(const std::string& word);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_PORTER_STEMMER_H_
