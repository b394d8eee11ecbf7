// ROUGE exactly as Google's rouge-score (rouge_score/tokenize.py, rouge_scorer.py).
//
// Tokenisation (rouge_score.tokenize.tokenize): lowercase (Python str.lower(); the only
// non-ASCII characters whose lowercase contains ASCII letters, U+0130 and U+212A, are
// mapped too), replace every run of characters outside [a-z0-9] by a space, split on
// whitespace, if stemming: NLTK PorterStemmer (default NLTK_EXTENSIONS mode, see
// porter_stemmer.h) on tokens longer than 3 characters, then drop empty tokens.
//
// ROUGE-L (rouge_scorer._score_lcs): LCS length of the target and prediction token
// lists; precision = lcs/|prediction|, recall = lcs/|target|,
// F = 2PR/(P+R) (0 when P+R = 0); all three 0 when either side has no tokens.
// ROUGE-N (_score_ngrams): clipped n-gram overlap; P = overlap/max(#pred n-grams, 1),
// R = overlap/max(#target n-grams, 1).
// Argument order follows rouge-score: score(target, prediction).
#ifndef QLORAD_CORE_EVAL_ROUGE_H_
#define QLORAD_CORE_EVAL_ROUGE_H_

#include <string>
#include <vector>

namespace qlorad::eval {

struct RougeScore {
  double precision = 0;
  double recall = 0;
  double fmeasure = 0;
};

std::vector<std::string> RougeTokenize(const std::string& text, bool use_stemmer);

// rouge_score.scoring.fmeasure: 2PR/(P+R), 0 when P+R == 0.
double RougeFMeasure(double precision, double recall);

// Length of the longest common subsequence of two token lists.
size_t LcsLength(const std::vector<std::string>& a, const std::vector<std::string>& b);

RougeScore RougeLFromTokens(const std::vector<std::string>& target, const std::vector<std::string>& prediction);
RougeScore RougeL(const std::string& target, const std::string& prediction, bool use_stemmer = false);
RougeScore RougeN(const std::string& target, const std::string& prediction, int n, bool use_stemmer = false);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_ROUGE_H_
