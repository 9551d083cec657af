// Line charts drawn as inline SVG (no script, no network): each series a polyline with its
// points' count in data-points, marks on the x axis as dashed vertical lines with a tooltip.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace aios {

struct ChartSeries {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (x, y); NaN y values are left out
  bool dashed = false;
  bool dots = false;  // a dot at every point (sparse series such as validation loss)
};

struct ChartMark {
  double x = 0;
  std::string color;
  std::string text;
};

struct ChartSpec {
  std::string id;  // the <svg> id
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  std::vector<ChartMark> marks;
};

// The chart as an <svg> element; one that has no finite point is drawn with "no data".
std::string svg_line_chart(const ChartSpec& chart);

// "&lt;" and friends: text safe inside HTML and SVG.
std::string escape_html(const std::string& text);

// 1234567 -> "1.23M", 0.00031 -> "3.1e-04": axis labels.
std::string short_number(double value);

}  // namespace aios
