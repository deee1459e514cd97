#include "adapt/core/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <stb_easy_font.h>

#include "sim/image_io.h"

namespace embody::adapt {
namespace {

using Color = std::array<std::uint8_t, 3>;

void Put(sim::Image* im, int x, int y, Color c) {
  if (x < 0 || y < 0 || x >= im->width || y >= im->height) return;
  std::uint8_t* p = &im->rgb[(static_cast<size_t>(y) * im->width + x) * 3];
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}

void Line(sim::Image* im, double x0, double y0, double x1, double y1, Color c, int thickness = 1) {
  const int steps = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    for (int dy = 0; dy < thickness; ++dy) {
      for (int dx = 0; dx < thickness; ++dx) Put(im, x + dx - thickness / 2, y + dy - thickness / 2, c);
    }
  }
}

int TextWidth(const std::string& text, int scale) { return stb_easy_font_width(const_cast<char*>(text.c_str())) * scale; }

// "Nice" tick step for a range: 1, 2 or 5 times a power of ten.
double TickStep(double range, int target) {
  const double raw = range / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) return m * mag;
  }
  return 10 * mag;
}

std::string Format(double v) {
  char buf[32];
  if (v != 0 && (std::abs(v) < 1e-3 || std::abs(v) >= 1e5))
    std::snprintf(buf, sizeof buf, "%.1e", v);
  else
    std::snprintf(buf, sizeof buf, "%g", std::round(v * 1e6) / 1e6);
  return buf;
}

}  // namespace

std::vector<double> AxisTicks(double lo, double hi, int target, bool integer) {
  double step = TickStep(hi - lo, target);
  if (integer) step = std::max(1.0, std::round(step));
  std::vector<double> ticks;
  const double first = std::ceil(lo / step - 1e-9), slack = 1e-9 * std::max(1.0, std::abs(hi));
  for (int k = 0; k < 1000 && (first + k) * step <= hi + slack; ++k) ticks.push_back((first + k) * step);
  return ticks;
}

void DrawText(sim::Image* image, int x, int y, const std::string& text, Color color, int scale) {
  static thread_local std::vector<char> buffer(200000);
  const int quads = stb_easy_font_print(0, 0, const_cast<char*>(text.c_str()), nullptr, buffer.data(), static_cast<int>(buffer.size()));
  struct Vertex {
    float x, y, z;
    unsigned char c[4];
  };
  const auto* v = reinterpret_cast<const Vertex*>(buffer.data());
  for (int q = 0; q < quads; ++q) {
    const Vertex* quad = v + 4 * q;  // axis-aligned rectangles
    const int x0 = static_cast<int>(quad[0].x) * scale, y0 = static_cast<int>(quad[0].y) * scale;
    const int x1 = static_cast<int>(quad[2].x) * scale, y1 = static_cast<int>(quad[2].y) * scale;
    for (int yy = y0; yy < y1; ++yy) {
      for (int xx = x0; xx < x1; ++xx) Put(image, x + xx, y + yy, color);
    }
  }
}

sim::Image LinePlot(const std::vector<PlotSeries>& series, const PlotOptions& o, PlotLayout* layout) {
  sim::Image im;
  im.width = o.width;
  im.height = o.height;
  im.rgb.assign(static_cast<size_t>(o.width) * o.height * 3, 255);
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (o.y_from_zero) ymin = std::min(ymin, 0.0);
  if (xmax <= xmin) xmax = xmin + 1;
  if (ymax <= ymin) ymax = ymin + 1;
  ymax += 0.05 * (ymax - ymin);
  int legend_w = 0;  // swatch (18) + gap (6) + the longest label, in a margin of its own
  for (const auto& s : series) legend_w = std::max(legend_w, 24 + TextWidth(s.label, 1));
  legend_w = std::min(legend_w, o.width / 3);
  const int left = 70, right = 20 + (legend_w > 0 ? legend_w + 12 : 0), top = 36, bottom = 46;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * pw; };
  auto py = [&](double y) { return top + (1 - (y - ymin) / (ymax - ymin)) * ph; };
  const Color grid{225, 225, 225}, axis{60, 60, 60}, text{20, 20, 20};
  for (double y : AxisTicks(ymin, ymax, 5)) {
    Line(&im, left, py(y), left + pw, py(y), grid);
    const std::string label = Format(y);
    DrawText(&im, left - 6 - TextWidth(label, 1), static_cast<int>(py(y)) - 4, label, text);
  }
  for (double x : AxisTicks(xmin, xmax, 8, o.integer_x)) {
    Line(&im, px(x), top, px(x), top + ph, grid);
    const std::string label = Format(x);
    DrawText(&im, static_cast<int>(px(x)) - TextWidth(label, 1) / 2, top + static_cast<int>(ph) + 6, label, text);
  }
  Line(&im, left, top, left, top + ph, axis);
  Line(&im, left, top + ph, left + pw, top + ph, axis);
  const int title_scale = TextWidth(o.title, 2) <= o.width - 16 ? 2 : 1;  // a long title in the small font, not clipped
  DrawText(&im, (o.width - TextWidth(o.title, title_scale)) / 2, title_scale == 2 ? 8 : 12, o.title, text, title_scale);
  DrawText(&im, left + static_cast<int>(pw) / 2 - TextWidth(o.xlabel, 1) / 2, o.height - 18, o.xlabel, text);
  DrawText(&im, 6, top - 14, o.ylabel, text);
  const int n = static_cast<int>(series.size());
  const int legend_x = left + static_cast<int>(pw) + 12;
  int legend_y = top + 8;
  for (int k = 0; k < n; ++k) {
    const PlotSeries& s = series[k];
    const int width = 2 + 2 * std::min(n - 1 - k, 2);  // the last drawn is the narrowest: overlaps show every colour
    for (size_t i = 1; i < s.x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.y[i - 1]) && std::isfinite(s.y[i])) Line(&im, px(s.x[i - 1]), py(s.y[i - 1]), px(s.x[i]), py(s.y[i]), s.color, width);
    }
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.y[i])) Line(&im, px(s.x[i]) - 2, py(s.y[i]), px(s.x[i]) + 2, py(s.y[i]), s.color, width + 1);
    }
    Line(&im, legend_x, legend_y + 3, legend_x + 18, legend_y + 3, s.color, 3);
    DrawText(&im, legend_x + 24, legend_y, s.label, text);
    legend_y += 14;
  }
  if (layout) {
    layout->plot = {left, top, static_cast<int>(pw), static_cast<int>(ph)};
    layout->legend = {legend_x, top + 8, legend_w, legend_y - top - 8};
  }
  return im;
}

void WriteLinePlot(const std::filesystem::path& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  sim::WritePng(path, LinePlot(series, options));
}

}  // namespace embody::adapt
