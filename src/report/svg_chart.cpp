#include "report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>

namespace aios {
namespace {

constexpr double kWidth = 620, kHeight = 300, kLeft = 74, kRight = 16, kTop = 34, kBottom = 44;

// About `count` round ticks (1, 2 or 5 times a power of ten apart) covering [low, high].
std::vector<double> nice_ticks(double low, double high, int count) {
  const double span = high - low;
  const double raw = span / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / power < 1.5 ? power
                      : raw / power < 3 ? 2 * power
                      : raw / power < 7 ? 5 * power
                                        : 10 * power;
  std::vector<double> ticks;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

}  // namespace

std::string escape_html(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string short_number(double value) {
  char text[32];
  const double magnitude = std::fabs(value);
  if (magnitude >= 1e9) {
    std::snprintf(text, sizeof text, "%.3gG", value / 1e9);
  } else if (magnitude >= 1e6) {
    std::snprintf(text, sizeof text, "%.3gM", value / 1e6);
  } else if (magnitude >= 1e4) {
    std::snprintf(text, sizeof text, "%.3gk", value / 1e3);
  } else if (magnitude != 0 && magnitude < 1e-2) {
    std::snprintf(text, sizeof text, "%.1e", value);
  } else {
    std::snprintf(text, sizeof text, "%.4g", value);
  }
  return text;
}

std::string svg_line_chart(const ChartSpec& chart) {
  double x_low = std::numeric_limits<double>::infinity(), x_high = -x_low, y_low = x_low, y_high = -x_low;
  for (const auto& series : chart.series) {
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_low = std::min(x_low, x), x_high = std::max(x_high, x);
      y_low = std::min(y_low, y), y_high = std::max(y_high, y);
    }
  }
  std::string svg = "<svg id=\"" + escape_html(chart.id) +
                    "\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(kWidth) +
                    "\" height=\"" + number(kHeight) + "\" viewBox=\"0 0 " + number(kWidth) + " " + number(kHeight) +
                    "\" role=\"img\" aria-label=\"" + escape_html(chart.title) + "\">\n";
  svg += "<text x=\"" + number(kLeft) + "\" y=\"20\" class=\"title\">" + escape_html(chart.title) + "</text>\n";
  if (!std::isfinite(x_low)) {
    svg += "<text x=\"" + number(kWidth / 2) + "\" y=\"" + number(kHeight / 2) +
           "\" text-anchor=\"middle\" class=\"empty\">no data</text>\n</svg>\n";
    return svg;
  }
  if (x_high == x_low) x_high = x_low + 1;
  if (y_high == y_low) y_high = y_low + (y_low == 0 ? 1 : std::fabs(y_low) * 0.1), y_low -= (y_high - y_low);
  const double pad = (y_high - y_low) * 0.05;
  y_low -= pad, y_high += pad;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const auto px = [&](double x) { return kLeft + (x - x_low) / (x_high - x_low) * plot_w; };
  const auto py = [&](double y) { return kTop + (1 - (y - y_low) / (y_high - y_low)) * plot_h; };

  svg += "<rect x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" + number(plot_w) + "\" height=\"" +
         number(plot_h) + "\" class=\"plot\"/>\n";
  for (const double t : nice_ticks(y_low, y_high, 5)) {
    svg += "<line x1=\"" + number(kLeft) + "\" x2=\"" + number(kLeft + plot_w) + "\" y1=\"" + number(py(t)) +
           "\" y2=\"" + number(py(t)) + "\" class=\"grid\"/><text x=\"" + number(kLeft - 6) + "\" y=\"" +
           number(py(t) + 4) + "\" text-anchor=\"end\" class=\"tick\">" + short_number(t) + "</text>\n";
  }
  for (const double t : nice_ticks(x_low, x_high, 6)) {
    svg += "<line x1=\"" + number(px(t)) + "\" x2=\"" + number(px(t)) + "\" y1=\"" + number(kTop) + "\" y2=\"" +
           number(kTop + plot_h) + "\" class=\"grid\"/><text x=\"" + number(px(t)) + "\" y=\"" +
           number(kTop + plot_h + 16) + "\" text-anchor=\"middle\" class=\"tick\">" + short_number(t) + "</text>\n";
  }
  svg += "<text x=\"" + number(kLeft + plot_w / 2) + "\" y=\"" + number(kHeight - 8) +
         "\" text-anchor=\"middle\" class=\"axis\">" + escape_html(chart.x_label) + "</text>\n";
  svg += "<text transform=\"translate(14," + number(kTop + plot_h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\" "
         "class=\"axis\">" +
         escape_html(chart.y_label) + "</text>\n";
  for (const auto& mark : chart.marks) {
    if (mark.x < x_low || mark.x > x_high) continue;
    svg += "<line x1=\"" + number(px(mark.x)) + "\" x2=\"" + number(px(mark.x)) + "\" y1=\"" + number(kTop) +
           "\" y2=\"" + number(kTop + plot_h) + "\" stroke=\"" + mark.color + "\" class=\"mark\"><title>" +
           escape_html(mark.text) + "</title></line>\n";
  }
  double legend_x = kLeft + 8;
  for (const auto& series : chart.series) {
    std::string points;
    std::int64_t count = 0;
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      points += number(px(x)) + "," + number(py(y)) + " ";
      ++count;
    }
    if (count == 0) continue;
    svg += "<polyline data-series=\"" + escape_html(series.label) + "\" data-points=\"" + std::to_string(count) +
           "\" points=\"" + points + "\" fill=\"none\" stroke=\"" + series.color + "\" stroke-width=\"1.5\"" +
           (series.dashed ? " stroke-dasharray=\"5,3\"" : "") + "/>\n";
    if (series.dots) {
      for (const auto& [x, y] : series.points) {
        if (std::isfinite(x) && std::isfinite(y)) {
          svg += "<circle cx=\"" + number(px(x)) + "\" cy=\"" + number(py(y)) + "\" r=\"2.5\" fill=\"" + series.color +
                 "\"/>";
        }
      }
      svg += "\n";
    }
    svg += "<rect x=\"" + number(legend_x) + "\" y=\"" + number(kTop + 6) + "\" width=\"10\" height=\"3\" fill=\"" +
           series.color + "\"/><text x=\"" + number(legend_x + 14) + "\" y=\"" + number(kTop + 11) +
           "\" class=\"legend\">" + escape_html(series.label) + "</text>\n";
    legend_x += 24 + 6.5 * static_cast<double>(series.label.size());
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace aios
