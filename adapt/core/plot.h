// Small line plots written as PNG (no plotting library in Debian's C++ world that we want to depend
// on): axes with ticks, labels in stb_easy_font's bitmap font, a legend. Torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sim/renderer.h"

namespace embody::adapt {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
  std::array<std::uint8_t, 3> color{31, 119, 180};
};

struct PlotOptions {
  std::string title, xlabel, ylabel;
  int width = 640, height = 400;
  bool y_from_zero = true;
  bool integer_x = false;  ///< x counts whole things (model steps): ticks only at integers
};

/// Tick positions on [lo, hi]: about `target` of them, 1, 2 or 5 times a power of ten apart; with
/// `integer`, at whole numbers only (at least 1 apart).
std::vector<double> AxisTicks(double lo, double hi, int target, bool integer = false);

/// Where LinePlot put things: the plotting box and the legend's, {x, y, width, height} in pixels.
struct PlotLayout {
  std::array<int, 4> plot{}, legend{};
};

/// Renders the series into an image. The legend sits in a margin right of the plotting box, never
/// on a curve; the series are drawn in order, each narrower than the one before, so a curve lying
/// on an earlier one shows as a line inside it (both visible). `layout` (optional) receives the boxes.
sim::Image LinePlot(const std::vector<PlotSeries>& series, const PlotOptions& options, PlotLayout* layout = nullptr);
/// Renders and writes a PNG (atomically).
void WriteLinePlot(const std::filesystem::path& path, const std::vector<PlotSeries>& series, const PlotOptions& options);

/// Draws text (stb_easy_font, `scale` pixels per font unit) into an image, top-left at (x, y).
void DrawText(sim::Image* image, int x, int y, const std::string& text, std::array<std::uint8_t, 3> color, int scale = 1);

}  // namespace embody::adapt
