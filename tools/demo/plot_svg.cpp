// A small SVG scatter plot in the look of the notebook's matplotlib figure: data points in
// matplotlib's default blue, the fitted line in red, a legend in the upper left, ticked axes.
#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/strings/str_format.h"
#include "demo.h"

namespace demo {
namespace {

constexpr double kWidth = 432, kHeight = 288;                 // 6 x 4 inches at 72 dpi
constexpr double kLeft = 54, kRight = 18, kTop = 14, kBottom = 32;
constexpr const char* kPointColor = "#1f77b4";

// Tick spacing of 1, 2 or 5 times a power of ten giving about eight ticks, as matplotlib picks.
double tick_step(double lo, double hi) {
  double raw = (hi - lo) / 8;
  double p = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

}  // namespace

bool write_regression_svg(const std::string& path, const std::vector<float>& xs,
                          const std::vector<float>& ys, float weight, float bias) {
  if (xs.empty()) return false;
  auto [xmin_it, xmax_it] = std::minmax_element(xs.begin(), xs.end());
  auto [ymin_it, ymax_it] = std::minmax_element(ys.begin(), ys.end());
  double x0 = *xmin_it, x1 = *xmax_it;
  double y0 = std::min<double>(*ymin_it, weight * x0 + bias), y1 = std::max<double>(*ymax_it, weight * x1 + bias);
  double xpad = (x1 - x0) * 0.05 + 1e-9, ypad = (y1 - y0) * 0.05 + 1e-9;
  x0 -= xpad, x1 += xpad, y0 -= ypad, y1 += ypad;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto sy = [&](double y) { return kTop + (y1 - y) / (y1 - y0) * ph; };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
      "font-family=\"DejaVu Sans, sans-serif\" font-size=\"10\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      kWidth, kHeight);
  for (double t = std::ceil(x0 / tick_step(x0, x1)) * tick_step(x0, x1); t <= x1; t += tick_step(x0, x1))
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>"
                          "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%g</text>\n",
                          sx(t), kTop + ph, sx(t), kTop + ph + 4, sx(t), kTop + ph + 15,
                          std::abs(t) < 1e-9 ? 0.0 : t);
  for (double t = std::ceil(y0 / tick_step(y0, y1)) * tick_step(y0, y1); t <= y1; t += tick_step(y0, y1))
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"black\"/>"
                          "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n",
                          kLeft - 4, sy(t), kLeft, sy(t), kLeft - 6, sy(t) + 3.5,
                          std::abs(t) < 1e-9 ? 0.0 : t);
  for (size_t i = 0; i < xs.size(); ++i)
    absl::StrAppendFormat(&svg, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
                          sx(xs[i]), sy(ys[i]), kPointColor);
  double lx0 = *xmin_it, lx1 = *xmax_it;
  absl::StrAppendFormat(&svg,
                        "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"red\" "
                        "stroke-width=\"1.5\"/>\n",
                        sx(lx0), sy(weight * lx0 + bias), sx(lx1), sy(weight * lx1 + bias));
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.2f\" y=\"%.2f\" width=\"112\" height=\"20\" fill=\"white\" "
                        "stroke=\"#cccccc\" rx=\"3\"/>\n"
                        "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"red\" stroke-width=\"1.5\"/>\n"
                        "<text x=\"%.2f\" y=\"%.2f\">Model Prediction</text>\n",
                        kLeft + 6, kTop + 6, kLeft + 12, kTop + 16, kLeft + 30, kTop + 16,
                        kLeft + 36, kTop + 19.5);
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n"
                        "</svg>\n",
                        kLeft, kTop, pw, ph);
  std::ofstream out(path);
  out << svg;
  return static_cast<bool>(out);
}

}  // namespace demo
