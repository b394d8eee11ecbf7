// qloractl: kubectl-like command line for the qlorad daemon.
//   qloractl [--address HOST:PORT] [--token T] [--tls-ca PEM [--tls-cert PEM --tls-key PEM]] [-o json] VERB ...
// Errors print one line ("qloractl: CODE: message") and exit non-zero.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/qloractl/cli.h"

namespace {

constexpr char kUsage[] =
    "usage: qloractl [--address HOST:PORT] [--token TOKEN] [--tls-ca PEM] [--tls-cert PEM --tls-key PEM] [-o json] COMMAND\n"
    "  datasets upload FILE --id ID [--format auto|classification|preference|...] [--csv] [--holdout 0.15] [--seed 42] [--allow-small]\n"
    "  datasets list | get ID | delete ID\n"
    "  jobs submit --dataset ID --name NAME [--quantize nf4|none] [--r 16] [--alpha 32] [--epochs 3] [--batch-size 4]\n"
    "              [--lr 2e-4] [--max-seq-len 512] [--seed 0] [--priority 0] [--gradient-checkpointing] [--watch]\n"
    "              [--checkpoint-keep none|attention|all (base outputs checkpointing keeps: faster, more memory)]\n"
    "              [--loraplus-lr-ratio R (LoRA+: lora_B learns at R x lr; 1 = plain LoRA)]\n"
    "              [--dora (DoRA: a trained magnitude per output row)]\n"
    "              [--method sft|dpo [--dpo-beta 0.1]]  (dpo: preference tuning on a {prompt, chosen, rejected} dataset;\n"
    "               the reference model is the base with the adapter disabled)\n"
    "              [--lora-init kaiming|gaussian|loftq|pissa [--loftq-iterations N]]  (loftq: nf4 bases; loftq/pissa\n"
    "               fit the adapter to the base weight and train it over its own base, written beside it)\n"
    "              [--packing (batch-size rows of max-seq-len tokens, several whole examples per row)]\n"
    "              [--devices N (data-parallel ranks on N of the daemon's training devices)]\n"
    "              [--eval-fraction 0.05 [--eval-every N] [--patience P] [--min-delta D]]  (validation slice of the train split)\n"
    "  jobs list | get ID | watch ID | cancel ID\n"
    "  adapters list | get REF | import NAME SERVER_DIR | load REF [--pin] | unload REF | delete REF\n"
    "  adapters promote REF ALIAS [--override-reason TEXT]   (the CI gate's verdict is printed; a refusal needs a reason)\n"
    "  adapters check-promotion REF ALIAS   (the gate's verdict only; exits non-zero when it refuses)\n"
    "  adapters upload DIR --name NAME [--allow-base-mismatch]   (sends a local PEFT adapter directory)\n"
    "  adapters export REF --out DIR [--format peft|gguf] [--type f32|f16|q8_0|q4_0] [--merge]   (downloads the files)\n"
    "  adapters approve REF [--note N] [--risk-class minimal|limited|high] [--documentation-ref URL] | reject REF --note N\n"
    "           [--evidence EVAL_ID ...] [--review-summary FILE]   (the evidence seen, recorded in the audit log)\n"
    "  generate --prompt TEXT [--adapter REF] [--max-new-tokens 64] [--temperature 0] [--stream] [--stop S ...]\n"
    "           [--json-schema FILE | --json-object | --choice a,b,c | --regex PATTERN]   (structured output)\n"
    "  classify --text TEXT --labels a,b [--adapter REF]\n"
    "  eval --dataset ID [--adapter REF] [--max-examples N] [--scoring log_likelihood|constrained|generation] | eval get ID\n"
    "  eval review-export ID --out DIR [--size 50] [--seed 1] [--blind] | eval review-import ID --reviewer NAME=FILE ...\n"
    "  reviews queue | show EVAL | rate EVAL ITEM --a N --b N --preference A|B|tie [--comment C] | submit EVAL\n"
    "  audit SUBJECT   (adapter:NAME@VERSION, evaluation:ID: the audit trail, oldest first)\n"
    "environment: QLORAD_ADDRESS, QLORAD_TOKEN\n";

// The usage lines of one command group (`qloractl jobs --help`); all of it for an unknown one.
std::string UsageOf(const std::string& group) {
  std::string out, all = kUsage;
  bool in_group = false;
  for (size_t start = 0, end; start < all.size(); start = end + 1) {
    end = all.find('\n', start);
    const std::string line = all.substr(start, end - start);
    if (start == 0) continue;  // the global line, re-added below
    if (line.rfind("  " + group + " ", 0) == 0 || line == "  " + group) in_group = true;
    else if (line.rfind("   ", 0) != 0) in_group = false;
    if (in_group) out += line + "\n";
  }
  const std::string global = all.substr(0, all.find('\n') + 1);
  return out.empty() ? all : global + out;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "qloractl: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qlorad::ctl;
  auto args = Args::Parse({argv + 1, argv + argc}, {"csv", "allow-small", "no-pii", "rslora", "dora", "watch", "raw", "stream",
                                                    "allow-base-mismatch", "blind", "gradient-checkpointing", "packing", "pin", "merge", "help", "h"});
  if (!args.ok()) return Fail(args.status());
  std::vector<std::string> words = args->positionals();
  const bool help = args->Has("help") || args->Has("h");
  if (words.empty() && !help) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (help) {
    std::fputs(words.empty() ? kUsage : UsageOf(words[0]).c_str(), stdout);
    return 0;
  }
  Output out;
  out.json = args->Get("o") == "json";
  const std::string group = words[0];
  const bool has_verb = group == "datasets" || group == "jobs" || group == "adapters" || group == "reviews";
  std::string verb = has_verb && words.size() > 1 ? words[1] : "";
  std::vector<std::string> rest(argv + 1, argv + argc);
  // Drop the command words from the argument list so positionals start after them.
  for (const std::string& w : std::vector<std::string>{group, verb})
    for (auto it = rest.begin(); !w.empty() && it != rest.end(); ++it)
      if (*it == w) {
        rest.erase(it);
        break;
      }
  auto sub = Args::Parse(rest, {"csv", "allow-small", "no-pii", "rslora", "dora", "watch", "raw", "stream", "allow-base-mismatch", "blind", "gradient-checkpointing", "packing", "pin", "merge"});
  if (!sub.ok()) return Fail(sub.status());
  auto client = ConnectFromArgs(*sub);
  if (!client.ok()) return Fail(client.status());
  absl::Status status;
  if (group == "datasets") status = DatasetsCommand(verb, *sub, **client, out);
  else if (group == "jobs") status = JobsCommand(verb, *sub, **client, out);
  else if (group == "adapters") status = AdaptersCommand(verb, *sub, **client, out);
  else if (group == "generate") status = GenerateCommand(*sub, **client, out);
  else if (group == "classify") status = ClassifyCommand(*sub, **client, out);
  else if (group == "eval") status = EvalCommand(*sub, **client, out);
  else if (group == "reviews") status = ReviewsCommand(verb, *sub, **client, out);
  else if (group == "audit") status = AuditCommand(*sub, **client, out);
  else status = absl::InvalidArgumentError("unknown command '" + group + "' (see qloractl --help)");
  return status.ok() ? 0 : Fail(status);
}
