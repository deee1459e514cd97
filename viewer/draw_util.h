// Drawing pieces the viewer's screens share: textures for recorded frames and line plots on ImGui's
// draw list (Debian has no ImPlot). Needs a current OpenGL context.
#pragma once

#include <cstdint>
#include <vector>

#include <imgui.h>

namespace embody::viewer {

/// Nearest-neighbour filtering (recorded pixels stay exact), clamped edges.
void SetupTexture(unsigned int texture);
/// RGB w x h into `texture`.
void UploadTexture(unsigned int texture, const std::uint8_t* rgb, int w, int h);
ImTextureID Tex(unsigned int texture);

struct Series {
  const char* label;
  const std::vector<double>* values;
  ImU32 color;
};

/// The plot box and its y ticks (0, hi/2, hi) with numbers left of `left`, starting at x0.
void DrawYAxis(ImDrawList* draw, float x0, float left, float right, float top, float bottom, double hi);

/// A line plot at the cursor, the full available width and `height` tall: every series on one set
/// of axes, y ticks with numbers from 0, x ticks in units of `x_per_value` per value with `x_unit`, a
/// legend. `box` (optional) receives the axes box x, y, w, h (and, with `marker` >= 0, a fifth int: the
/// marker's x); `marker` >= 0 draws a vertical line at that value's position. Value k is drawn at
/// x = (k + 1) * x_per_value (values ahead of now), or at k * x_per_value with `from_zero`. With
/// `integer_x` (x counts whole model steps) the x ticks sit at whole numbers only.
void SeriesPlot(const std::vector<Series>& series, double x_per_value, const char* y_label, float height, int* box = nullptr,
                const char* x_unit = "s", int marker = -1, bool from_zero = false, bool integer_x = false);

}  // namespace embody::viewer
