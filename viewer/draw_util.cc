#include "viewer/draw_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <GLFW/glfw3.h>

#include "adapt/core/plot.h"

namespace embody::viewer {

void SetupTexture(unsigned int tex) {
  glBindTexture(GL_TEXTURE_2D, tex);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);  // recorded pixels stay exact
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
}

ImTextureID Tex(unsigned int t) { return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(t)); }

// The plot box and its y ticks (0, hi/2, hi) with numbers left of `left`, starting at x0.
void DrawYAxis(ImDrawList* draw, float x0, float left, float right, float top, float bottom, double hi) {
  const ImU32 axis = IM_COL32(180, 180, 180, 255), grid = IM_COL32(90, 90, 90, 255);
  draw->AddRect(ImVec2(left, top), ImVec2(right, bottom), axis);
  char text[32];
  for (int i = 0; i <= 2; ++i) {
    const float y = bottom - (bottom - top) * i / 2.0f;
    if (i == 1) draw->AddLine(ImVec2(left, y), ImVec2(right, y), grid);
    std::snprintf(text, sizeof text, "%.3g", hi * i / 2);
    draw->AddText(ImVec2(x0, y - 7), axis, text);
  }
}

// A line plot on ImGui's draw list (Debian has no ImPlot): every series on one set of axes, y ticks
// with numbers from 0, x in seconds ahead (one value per imagined frame), and a legend.
void SeriesPlot(const std::vector<Series>& series, double x_per_value, const char* y_label, float height, int* box, const char* x_unit, int marker,
                bool from_zero, bool integer_x) {
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = ImGui::GetContentRegionAvail().x;
  ImGui::Dummy(ImVec2(width, height));
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const float left = origin.x + 44, right = origin.x + width - 6, top = origin.y + 4, bottom = origin.y + height - 18;
  if (box)
    box[0] = static_cast<int>(left), box[1] = static_cast<int>(top), box[2] = static_cast<int>(right - left), box[3] = static_cast<int>(bottom - top);
  double hi = 0;
  size_t n = 0;
  for (const Series& s : series) {
    for (double v : *s.values) hi = std::isfinite(v) ? std::max(hi, v) : hi;
    n = std::max(n, s.values->size());
  }
  if (n == 0 || !(hi > 0)) return;
  hi *= 1.1;
  DrawYAxis(draw, origin.x, left, right, top, bottom, hi);
  const ImU32 axis = IM_COL32(180, 180, 180, 255);
  char text[32];
  // Value k sits at x = (k + 1) * step (values ahead of now) or, from_zero, at k * step.
  const double first = from_zero ? 0.0 : 1.0, span = std::max(1e-9, (n - 1 + first) * x_per_value);
  auto x_of = [&](double k) { return left + (right - left) * static_cast<float>((k + first) * x_per_value / span); };
  for (double tick : adapt::AxisTicks(0, span, 4, integer_x)) {
    const float x = left + (right - left) * static_cast<float>(tick / span);
    std::snprintf(text, sizeof text, "%.3g%s", tick, x_unit);
    const float text_width = ImGui::CalcTextSize(text).x;
    draw->AddText(ImVec2(std::min(x - 10, right - text_width), bottom + 2), axis, text);
  }
  draw->AddText(ImVec2(left + 4, top + 2), axis, y_label);
  if (marker >= 0 && static_cast<size_t>(marker) < n) {  // the current value's position
    const float x = x_of(marker);
    draw->AddLine(ImVec2(x, top), ImVec2(x, bottom), IM_COL32(255, 255, 255, 160), 1.0f);
    if (box) box[4] = static_cast<int>(x);
  }
  float legend_y = top + 2;
  for (const Series& s : series) {
    const auto& v = *s.values;
    for (size_t i = 1; i < v.size(); ++i) {
      if (!std::isfinite(v[i - 1]) || !std::isfinite(v[i])) continue;  // gaps stay gaps
      auto at = [&](size_t k) {
        return ImVec2(x_of(static_cast<double>(k)), bottom - (bottom - top) * static_cast<float>(std::clamp(v[k] / hi, 0.0, 1.0)));
      };
      draw->AddLine(at(i - 1), at(i), s.color, 2.0f);
    }
    const float text_width = ImGui::CalcTextSize(s.label).x;
    draw->AddLine(ImVec2(right - text_width - 28, legend_y + 7), ImVec2(right - text_width - 10, legend_y + 7), s.color, 2.0f);
    draw->AddText(ImVec2(right - text_width - 6, legend_y), s.color, s.label);
    legend_y += 15;
  }
}

void UploadTexture(unsigned int texture, const std::uint8_t* rgb, int w, int h) {
  glBindTexture(GL_TEXTURE_2D, texture);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB, w, h, 0, GL_RGB, GL_UNSIGNED_BYTE, rgb);
}

}  // namespace embody::viewer
