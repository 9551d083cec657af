// `aios report RUN_DIR|FILE.jsonl... -o report.html`: the runs' metrics as one self-contained
// HTML file (report/html_report.h). Works on a run still in progress.
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "base/files.h"
#include "cli/app.h"
#include "report/html_report.h"

namespace aios::cli {
namespace {

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string output = "report.html";
};

int run_report(const ReportOptions& o) {
  // Only a report aios wrote is replaced: any other file of that name is the user's.
  if (path_exists(o.output)) {
    if (!is_regular_file(o.output) || read_text_file(o.output).find(kReportGenerator) == std::string::npos) {
      throw Error("--output", o.output + " exists and is not a report aios wrote", "another --output path");
    }
  }
  std::vector<RunLog> runs;
  for (const auto& input : o.inputs) runs.push_back(read_run_log(input));
  write_file_atomically(o.output, html_report(runs));
  std::size_t points = 0;
  for (const auto& run : runs) points += run.steps.size();
  std::printf("report of %zu run(s), %zu steps, written to %s\n", runs.size(), points, o.output.c_str());
  return 0;
}

}  // namespace

CommandAction add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  CLI::App* cmd = app.add_subcommand("report", "Charts of runs' metrics in one self-contained HTML file");
  cmd->add_option("inputs", o->inputs, "Run directories (their metrics.jsonl) or JSONL files of --log-file")
      ->required();
  cmd->add_option("-o,--output", o->output, "The HTML file to write")->capture_default_str();
  return [o] { return run_report(*o); };
}

}  // namespace aios::cli
