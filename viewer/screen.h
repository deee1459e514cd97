// What rollout-viewer's main loop and exports drive: a dataset's episodes with imagined rollouts
// (ViewerApp) or a planning episode's replay (PlanView).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

struct GLFWwindow;

namespace embody::viewer {

class Screen {
 public:
  virtual ~Screen() = default;
  /// Builds and renders one frame into the current framebuffer (width x height).
  virtual void Draw(int width, int height) = 0;
  /// Input that is not ImGui's (keys, mouse on 3-D views). Once per frame.
  virtual void HandleInput(GLFWwindow*) {}
  /// Advances playback by `seconds` of wall time.
  virtual void Tick(double seconds) = 0;
  /// Blocks until background work the next frame shows is done (exports).
  virtual void WaitForImagination() {}
  /// Timeline positions (the video's frames) and the current one.
  virtual int frames() const = 0;
  virtual void SetFrame(int t) = 0;
  /// Where things landed in the last frame drawn (written beside --screenshot as JSON).
  virtual nlohmann::json LayoutJson() const = 0;
};

}  // namespace embody::viewer
