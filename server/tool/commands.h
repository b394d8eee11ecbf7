// qlorad-tool subcommands. Each takes the arguments after its name and returns
// the process exit code; errors are printed as one line on stderr.
#ifndef QLORAD_SERVER_TOOL_COMMANDS_H_
#define QLORAD_SERVER_TOOL_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qlorad::tool {

using Args = std::vector<std::string>;

int RunMakeModel(const Args& args);
int RunMakeAdapter(const Args& args);
int RunPretrain(const Args& args);
int RunPlan(const Args& args);
int RunLogits(const Args& args);
int RunGenerate(const Args& args);
int RunChooseServeHead(const Args& args);
int RunQuantize(const Args& args);
int RunTrain(const Args& args);
int RunDpoEval(const Args& args);
int RunTokenize(const Args& args);
int RunPrepareData(const Args& args);
int RunMerge(const Args& args);
int RunExportGguf(const Args& args);

// Prints `status` as "qlorad-tool <command>: <message>" and returns 1 if not OK, else 0.
int ReportStatus(const std::string& command, const absl::Status& status);

}  // namespace qlorad::tool

#endif  // QLORAD_SERVER_TOOL_COMMANDS_H_
