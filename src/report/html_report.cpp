#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "report/svg_chart.h"

namespace aios {
namespace {

const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

std::string color_of(std::size_t run) { return kColors[run % (sizeof kColors / sizeof kColors[0])]; }

std::string format(const char* pattern, double value) {
  if (!std::isfinite(value)) return "&ndash;";
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

double median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  if (values.empty()) return StepPoint::kNone;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

// One series per run of a per-step quantity.
ChartSpec per_step_chart(const std::vector<RunLog>& runs, std::string id, std::string title, std::string y_label,
                         const std::function<double(const StepPoint&)>& value, bool against_tokens = false) {
  ChartSpec chart{std::move(id), std::move(title), against_tokens ? "tokens" : "step", std::move(y_label), {}, {}};
  for (std::size_t r = 0; r < runs.size(); ++r) {
    ChartSeries series{runs[r].name, color_of(r), {}, false, false};
    for (const auto& p : runs[r].steps) series.points.emplace_back(against_tokens ? p.tokens : p.step, value(p));
    chart.series.push_back(std::move(series));
    if (against_tokens) continue;
    for (const auto& mark : runs[r].marks) {
      const std::string color = mark.kind == "shrink" ? "#d62728" : mark.kind == "resume" ? "#7f7f7f" : "#000000";
      chart.marks.push_back({mark.step, color, runs[r].name + ": " + mark.text});
    }
  }
  return chart;
}

std::string summary_row(const RunLog& run, std::size_t index) {
  const auto& c = run.config;
  const auto& model = c.value("model", nlohmann::json::object());
  const auto& options = c.value("options", nlohmann::json::object());
  const auto& memory = options.value("memory", nlohmann::json::object());
  const auto& data = options.value("data", nlohmann::json::object());
  const auto& optimizer = options.value("optimizer", nlohmann::json::object());
  std::string flags;
  const auto flag = [&](bool on, const char* name) {
    if (on) flags += std::string(flags.empty() ? "" : ", ") + name;
  };
  flag(memory.value("amp", false), "amp");
  flag(memory.value("gradient-checkpointing", false), "checkpointing");
  flag(memory.value("chunked-loss", false), "chunked loss");
  flag(memory.value("chunked-training", false), "chunked training");
  flag(optimizer.value("use-8bit-optimizer", false), "8-bit AdamW");
  double best_val = StepPoint::kNone, peak = StepPoint::kNone;
  std::vector<double> rates;
  for (const auto& p : run.steps) {
    if (std::isfinite(p.val_loss)) best_val = std::isfinite(best_val) ? std::min(best_val, p.val_loss) : p.val_loss;
    for (const double bytes : p.peak_bytes_per_rank) peak = std::isfinite(peak) ? std::max(peak, bytes) : bytes;
    rates.push_back(p.tokens_per_s);
  }
  const auto shrinks =
      std::count_if(run.marks.begin(), run.marks.end(), [](const RunMark& m) { return m.kind == "shrink"; });
  const StepPoint last = run.steps.empty() ? StepPoint{} : run.steps.back();
  std::string row = "<tr><td><span class=\"swatch\" style=\"background:" + color_of(index) + "\"></span>" +
                    escape_html(run.name) + "</td>";
  row += "<td>" + escape_html(model.value("preset", std::string("?"))) + ": " +
         std::to_string(model.value("n_layer", 0)) + " layers, " + std::to_string(model.value("n_embd", 0)) +
         " wide, " + short_number(model.value("parameters", 0.0)) + " parameters</td>";
  row += "<td>" + escape_html(c.value("device", std::string("?"))) + " &times; " +
         std::to_string(c.value("distributed", nlohmann::json::object()).value("world", 1)) + "</td>";
  row += "<td>batch " + std::to_string(data.value("batch-size", 0)) + " &times; " +
         std::to_string(data.value("gradient-accumulation-steps", 1)) + ", window " +
         std::to_string(data.value("window-size", 0)) + (flags.empty() ? "" : "; " + escape_html(flags)) + "</td>";
  row += "<td>" + format("%.0f", last.step) + "</td><td>" + format("%.4f", last.loss) + "</td><td>" +
         format("%.4f", best_val) + "</td><td>" + format("%.0f", median(rates)) + "</td><td>" +
         format("%.2f GiB", peak / (1024.0 * 1024.0 * 1024.0)) + "</td><td>" + std::to_string(shrinks) + "</td></tr>\n";
  return row;
}

}  // namespace

std::string html_report(const std::vector<RunLog>& runs) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  html += kReportGenerator;
  html +=
      "<title>aios report</title>\n<style>\n"
      "body{font-family:system-ui,sans-serif;margin:24px;color:#222}"
      "table{border-collapse:collapse;font-size:13px;margin-bottom:20px}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
      ".swatch{display:inline-block;width:10px;height:10px;margin-right:6px}"
      ".charts{display:flex;flex-wrap:wrap;gap:12px}"
      ".chart{border:1px solid #ddd;background:#fff}.plot{fill:#fcfcfc;stroke:#999}"
      ".grid{stroke:#e5e5e5}.tick,.legend{font-size:11px;fill:#444}.axis{font-size:12px;fill:#222}"
      ".title{font-size:14px;font-weight:600}.empty{font-size:13px;fill:#888}"
      ".mark{stroke-width:1.2;stroke-dasharray:4,3}.note{font-size:12px;color:#666}\n</style></head><body>\n";
  html +=
      "<h1>aios report</h1>\n<table id=\"summary\"><tr><th>run</th><th>model</th><th>device</th>"
      "<th>batch and techniques</th><th>steps</th><th>last loss</th><th>best val loss</th>"
      "<th>median tokens/s</th><th>peak memory</th><th>OOM shrinks</th></tr>\n";
  for (std::size_t r = 0; r < runs.size(); ++r) html += summary_row(runs[r], r);
  html +=
      "</table>\n<p class=\"note\">Dashed vertical lines: red, an out-of-memory shrink; grey, a resume; black, "
      "a stop by a signal (hover for details). Sources: ";
  for (std::size_t r = 0; r < runs.size(); ++r) {
    html += (r ? ", " : "") + escape_html(runs[r].path);
    if (runs[r].unreadable_lines) html += " (" + std::to_string(runs[r].unreadable_lines) + " unreadable line(s))";
  }
  html += ".</p>\n<div class=\"charts\">\n";

  ChartSpec loss =
      per_step_chart(runs, "loss", "Loss", "loss (nats per token)", [](const StepPoint& p) { return p.loss; });
  for (std::size_t r = 0; r < runs.size(); ++r) {
    ChartSeries val{runs[r].name + " val", color_of(r), {}, true, true};
    for (const auto& p : runs[r].steps) {
      if (std::isfinite(p.val_loss)) val.points.emplace_back(p.step, p.val_loss);
    }
    loss.series.push_back(std::move(val));
  }
  html += svg_line_chart(loss);
  ChartSpec by_tokens = per_step_chart(
      runs, "loss-tokens", "Loss against tokens", "loss (nats per token)", [](const StepPoint& p) { return p.loss; },
      /*against_tokens=*/true);
  html += svg_line_chart(by_tokens);
  html += svg_line_chart(
      per_step_chart(runs, "lr", "Learning rate", "learning rate", [](const StepPoint& p) { return p.lr; }));
  html += svg_line_chart(per_step_chart(runs, "throughput", "Tokens per second", "tokens/s",
                                        [](const StepPoint& p) { return p.tokens_per_s; }));
  html += svg_line_chart(per_step_chart(runs, "mfu", "Model FLOPs utilisation", "MFU (%)",
                                        [](const StepPoint& p) { return p.mfu * 100; }));
  ChartSpec memory{"memory", "Peak memory per rank", "step", "GiB", {}, {}};
  for (std::size_t r = 0; r < runs.size(); ++r) {
    std::size_t ranks = 0;
    for (const auto& p : runs[r].steps) ranks = std::max(ranks, p.peak_bytes_per_rank.size());
    for (std::size_t k = 0; k < ranks; ++k) {
      ChartSeries series{runs[r].name + (ranks > 1 ? " rank " + std::to_string(k) : ""), color_of(r), {}, k > 0, false};
      for (const auto& p : runs[r].steps) {
        series.points.emplace_back(p.step, k < p.peak_bytes_per_rank.size()
                                               ? p.peak_bytes_per_rank[k] / (1024.0 * 1024.0 * 1024.0)
                                               : StepPoint::kNone);
      }
      memory.series.push_back(std::move(series));
    }
  }
  memory.marks = loss.marks;
  html += svg_line_chart(memory);
  html += svg_line_chart(
      per_step_chart(runs, "grad-norm", "Gradient norm", "norm", [](const StepPoint& p) { return p.grad_norm; }));
  html += "</div>\n</body></html>\n";
  return html;
}

}  // namespace aios
