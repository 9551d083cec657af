// `aios report`: one self-contained HTML file (inline SVG, no script, no network) with a summary
// table and charts of one or more runs overlaid: loss against steps and tokens, learning rate,
// tokens/s, MFU, peak memory per rank and gradient norm, with out-of-memory shrinks, resumes and
// stops marked on the step axis.
#pragma once

#include <string>
#include <vector>

#include "report/run_log.h"

namespace aios {

// The marker that tells a report aios wrote (one it may replace) from a user's file.
inline constexpr const char* kReportGenerator = "<meta name=\"generator\" content=\"aios report\">";

std::string html_report(const std::vector<RunLog>& runs);

}  // namespace aios
