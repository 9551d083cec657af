// aios report: real runs' JSONL (one resumed, one shrunk by an injected out-of-memory error) to
// one HTML file whose charts hold every step; a run in progress; a user's file never replaced.
// tests/reference/check_report_in_browser.py loads such a report in headless Chromium.
#include <gtest/gtest.h>

#include <regex>

#include "report/html_report.h"
#include "report/run_log.h"
#include "test_support.h"

namespace aios {
namespace {

using testing::run_aios;

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Report, ChartsHoldEveryStepOfEachRunWithResumesAndShrinksMarked) {
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus/a.txt", testing::sample_text(60'000, 4));
  ASSERT_EQ(run_aios("prepare " + (dir / "corpus") + " --output " + (dir / "set")).status, 0);
  const std::string common = "train --dataset-file " + (dir / "set") +
                             " --model tiny --n-layer 1 --n-head 2 --n-embd 32 --window-size 16 --batch-size 4"
                             " --warmup-steps 1 --eval-interval 3 --eval-batches 1 --device cpu --no-amp";
  // Run a: 4 steps, then resumed to 6 (its replay of nothing, a resume mark at 4).
  ASSERT_EQ(
      run_aios(common + " --steps 4 --out-dir " + (dir / "a") + " --log-file " + (dir / "a/metrics.jsonl")).status, 0);
  ASSERT_EQ(run_aios(common + " --steps 6 --resume latest --out-dir " + (dir / "a") + " --log-file " +
                     (dir / "a/metrics.jsonl"))
                .status,
            0);
  // Run b: an out-of-memory error injected at step 2 halves the micro-batch.
  {
    testing::ScopedEnv oom("AIOS_FAULT_OOM_AT_STEP", "2");
    const auto b =
        run_aios(common + " --steps 5 --fault-injection --out-dir " + (dir / "b") + " --log-file " + (dir / "b.jsonl"));
    ASSERT_EQ(b.status, 0) << b.output;
  }
  const RunLog a = read_run_log(dir / "a");
  EXPECT_EQ(a.name, "a");
  ASSERT_EQ(a.steps.size(), 6u);
  ASSERT_EQ(a.marks.size(), 1u);
  EXPECT_EQ(a.marks[0].kind, "resume");
  EXPECT_EQ(a.marks[0].step, 4);

  const auto made = run_aios("report " + (dir / "a") + " " + (dir / "b.jsonl") + " -o " + (dir / "report.html"));
  ASSERT_EQ(made.status, 0) << made.output;
  const std::string html = testing::read_file(dir / "report.html");
  EXPECT_EQ(count(html, "<svg id="), 7);
  EXPECT_EQ(count(html, "<tr><td>"), 2);  // one summary row per run
  // The loss chart: each run's 6 and 5 steps, and a's validation points (steps 3 and 6, and 4, the
  // last step of its first part).
  const std::string loss =
      html.substr(html.find("<svg id=\"loss\""),
                  html.find("</svg>", html.find("<svg id=\"loss\"")) - html.find("<svg id=\"loss\""));
  EXPECT_NE(loss.find(R"(data-series="a" data-points="6")"), std::string::npos) << loss.substr(0, 2000);
  EXPECT_NE(loss.find(R"(data-series="b" data-points="5")"), std::string::npos);
  EXPECT_NE(loss.find(R"(data-series="a val" data-points="3")"), std::string::npos);
  EXPECT_NE(loss.find("a: resumed from step 4"), std::string::npos);
  EXPECT_NE(loss.find("b: micro-batch 4 -&gt; 2"), std::string::npos) << "the injected shrink is marked";
  EXPECT_EQ(html.find("<script"), std::string::npos) << "self-contained, no script";
}

TEST(Report, ARunInProgressIsReadUpToItsLastCompleteLine) {
  testing::ScratchDir dir;
  testing::write_file(dir / "m.jsonl", R"({"type":"config","model":{"n_layer":1}})"
                                       "\n"
                                       R"({"type":"step","step":1,"loss":5.0,"tokens":64})"
                                       "\n"
                                       R"({"type":"step","step":2,"lo)");
  const RunLog log = read_run_log(dir / "m.jsonl");
  EXPECT_EQ(log.steps.size(), 1u);
  EXPECT_EQ(log.unreadable_lines, 1);
  EXPECT_NE(html_report({log}).find(R"(data-series="m" data-points="1")"), std::string::npos);
}

TEST(Report, AFileThatIsNotAReportIsNeverReplaced) {
  testing::ScratchDir dir;
  testing::write_file(dir / "m.jsonl", R"({"type":"step","step":1,"loss":5.0})"
                                       "\n");
  testing::write_file(dir / "notes.html", "my notes");
  const auto refused = run_aios("report " + (dir / "m.jsonl") + " -o " + (dir / "notes.html"));
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("notes.html exists and is not a report aios wrote"), std::string::npos)
      << refused.output;
  EXPECT_EQ(testing::read_file(dir / "notes.html"), "my notes");
  ASSERT_EQ(run_aios("report " + (dir / "m.jsonl") + " -o " + (dir / "r.html")).status, 0);
  EXPECT_EQ(run_aios("report " + (dir / "m.jsonl") + " -o " + (dir / "r.html")).status, 0) << "its own report";
  const auto empty = run_aios("report " + (dir / "notes.html"));
  EXPECT_NE(empty.output.find("holds no record of aios train"), std::string::npos) << empty.output;
}

}  // namespace
}  // namespace aios
