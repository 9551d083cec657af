#include "report/run_log.h"

#include <algorithm>
#include <fstream>

#include "base/error.h"
#include "base/files.h"

namespace aios {
namespace {

double number_or_none(const nlohmann::json& record, const char* key) {
  const auto found = record.find(key);
  return found != record.end() && found->is_number() ? found->get<double>() : StepPoint::kNone;
}

std::string jsonl_of(const std::string& path) {
  if (is_regular_file(path)) return path;
  if (!is_directory(path)) throw Error(path, "does not exist", "a run directory or a metrics .jsonl file");
  if (const auto metrics = join_path(path, "metrics.jsonl"); is_regular_file(metrics)) return metrics;
  std::vector<std::string> found;
  for (const auto& name : list_directory(path)) {
    if (file_extension(name) == ".jsonl") found.push_back(join_path(path, name));
  }
  if (found.size() != 1) {
    throw Error(path, found.empty() ? "holds no .jsonl metrics file" : "holds several .jsonl files",
                "the run's --log-file, named on the command line");
  }
  return found.front();
}

}  // namespace

RunLog read_run_log(const std::string& path) {
  RunLog log;
  log.path = jsonl_of(path);
  log.name =
      is_directory(path) ? file_name(path.back() == '/' ? path.substr(0, path.size() - 1) : path) : file_stem(log.path);
  std::ifstream file(log.path);
  std::string line;
  bool any = false;
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      ++log.unreadable_lines;  // a line being written as the report reads
      continue;
    }
    const std::string type = record.value("type", "");
    if (type == "config") {
      any = true;
      const double resumed = number_or_none(record, "resumed_from_step");
      if (!std::isnan(resumed) && resumed > 0) {
        // The resumed run replays the steps after its checkpoint: its points replace the old ones.
        std::erase_if(log.steps, [&](const StepPoint& p) { return p.step > resumed; });
        log.marks.push_back(
            {resumed, "resume", "resumed from step " + std::to_string(static_cast<long long>(resumed))});
      }
      log.config = record;
    } else if (type == "step") {
      any = true;
      StepPoint p;
      p.step = number_or_none(record, "step");
      p.tokens = number_or_none(record, "tokens");
      p.loss = number_or_none(record, "loss");
      p.lr = number_or_none(record, "lr");
      p.tokens_per_s = number_or_none(record, "tokens_per_s");
      p.mfu = number_or_none(record, "mfu");
      p.grad_norm = number_or_none(record, "grad_norm");
      p.val_loss = number_or_none(record, "val_loss");
      if (record.contains("peak_allocated_bytes_per_rank")) {
        p.peak_bytes_per_rank = record["peak_allocated_bytes_per_rank"].get<std::vector<double>>();
      } else if (const double peak = number_or_none(record, "peak_allocated_bytes"); !std::isnan(peak)) {
        p.peak_bytes_per_rank = {peak};
      }
      if (!std::isnan(p.step)) log.steps.push_back(std::move(p));
    } else if (type == "event") {
      const std::string event = record.value("event", "");
      const double step = number_or_none(record, "step");
      if (event == "batch_shrink") {
        log.marks.push_back({step, "shrink",
                             "micro-batch " + std::to_string(record.value("micro_batch_before", 0)) + " -> " +
                                 std::to_string(record.value("micro_batch", 0)) + " (" + record.value("reason", "") +
                                 ")"});
      } else if (event == "stopped") {
        log.marks.push_back({step, "stop", "stopped by " + record.value("signal", std::string("a signal"))});
      }
    }
  }
  if (!any) throw Error(log.path, "holds no record of aios train", "the JSONL file of a run's --log-file");
  return log;
}

}  // namespace aios
