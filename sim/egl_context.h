// A headless OpenGL context through EGL, current on the thread that made it. Tries the EGL device
// platform first (NVIDIA and Mesa devices), then Mesa's surfaceless platform; needs no X display.
// $EMBODY_EGL_PLATFORM=device|surfaceless forces one.
#pragma once

#include <string>

namespace embody::sim {

class EglContext {
 public:
  /// Creates a desktop-OpenGL context and makes it current. @throws SimError when no platform works.
  EglContext();
  ~EglContext();
  EglContext(const EglContext&) = delete;
  EglContext& operator=(const EglContext&) = delete;

  /// Makes the context current on the calling thread (no-op when it already is).
  void MakeCurrent();
  /// "egl-device" or "egl-surfaceless".
  const std::string& platform() const { return platform_; }

 private:
  void* display_ = nullptr;
  void* context_ = nullptr;
  std::string platform_;
};

}  // namespace embody::sim
