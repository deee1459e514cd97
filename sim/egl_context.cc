#include "sim/egl_context.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include <EGL/egl.h>
#include <EGL/eglext.h>

#include "sim/world.h"

namespace embody::sim {
namespace {

#ifndef EGL_PLATFORM_SURFACELESS_MESA
#define EGL_PLATFORM_SURFACELESS_MESA 0x31DD
#endif

struct Created {
  EGLDisplay display = EGL_NO_DISPLAY;
  EGLContext context = EGL_NO_CONTEXT;
};

// Initializes `display` and creates a current desktop-GL context on it; false when it cannot.
bool TryDisplay(EGLDisplay display, Created* out) {
  if (display == EGL_NO_DISPLAY) return false;
  EGLint major = 0, minor = 0;
  if (!eglInitialize(display, &major, &minor)) return false;
  // No surface is ever made (MuJoCo renders into its own framebuffer), so any surface type will do;
  // the default (EGL_WINDOW_BIT) would rule out every config of a surfaceless display.
  const EGLint config_attribs[] = {EGL_SURFACE_TYPE, 0, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
                                   EGL_NONE};
  EGLConfig config;
  EGLint count = 0;
  if (!eglChooseConfig(display, config_attribs, &config, 1, &count) || count < 1) return false;
  if (!eglBindAPI(EGL_OPENGL_API)) return false;
  EGLContext context = eglCreateContext(display, config, EGL_NO_CONTEXT, nullptr);
  if (context == EGL_NO_CONTEXT) return false;
  if (!eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, context)) {
    eglDestroyContext(display, context);
    return false;
  }
  out->display = display;
  out->context = context;
  return true;
}

bool TryDevicePlatform(Created* out) {
  auto query_devices = reinterpret_cast<PFNEGLQUERYDEVICESEXTPROC>(eglGetProcAddress("eglQueryDevicesEXT"));
  auto get_platform_display = reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(eglGetProcAddress("eglGetPlatformDisplayEXT"));
  if (!query_devices || !get_platform_display) return false;
  EGLint count = 0;
  std::vector<EGLDeviceEXT> devices(16);
  if (!query_devices(static_cast<EGLint>(devices.size()), devices.data(), &count)) return false;
  for (EGLint i = 0; i < count; ++i) {
    if (TryDisplay(get_platform_display(EGL_PLATFORM_DEVICE_EXT, devices[i], nullptr), out)) return true;
  }
  return false;
}

bool TrySurfacelessPlatform(Created* out) {
  auto get_platform_display = reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(eglGetProcAddress("eglGetPlatformDisplayEXT"));
  if (!get_platform_display) return false;
  return TryDisplay(get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, nullptr), out);
}

}  // namespace

EglContext::EglContext() {
  const char* forced = std::getenv("EMBODY_EGL_PLATFORM");
  const bool want_device = forced == nullptr || std::strcmp(forced, "device") == 0;
  const bool want_surfaceless = forced == nullptr || std::strcmp(forced, "surfaceless") == 0;
  Created created;
  if (want_device && TryDevicePlatform(&created)) {
    platform_ = "egl-device";
  } else if (want_surfaceless && TrySurfacelessPlatform(&created)) {
    platform_ = "egl-surfaceless";
  } else {
    throw SimError(
        "cannot create a headless OpenGL context through EGL (tried the device and Mesa surfaceless "
        "platforms); install libegl-mesa0 and libgl1-mesa-dri, or an NVIDIA driver with EGL");
  }
  display_ = created.display;
  context_ = created.context;
}

EglContext::~EglContext() {
  // The display is shared by every context in the process and EGL does not count references to it,
  // so only this context is destroyed, never the display.
  if (eglGetCurrentContext() == context_) {
    eglMakeCurrent(display_, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
  }
  eglDestroyContext(display_, context_);
}

void EglContext::MakeCurrent() {
  if (eglGetCurrentContext() == context_) return;
  if (!eglMakeCurrent(display_, EGL_NO_SURFACE, EGL_NO_SURFACE, context_)) {
    throw SimError("eglMakeCurrent failed (is this renderer used on two threads at once?)");
  }
}

}  // namespace embody::sim
