// rollout-viewer: imagined vs true rollouts, side by side.
//   rollout-viewer --data data/ur5.h5 [--model models/ur5] [--episode 3]
//   rollout-viewer --data data/ur5.h5 --model models/ur5 --screenshot out.png     (no screen needed)
//   rollout-viewer --data data/ur5.h5 --model models/ur5 --video out.mp4
//   rollout-viewer --data data/ur5.h5 --model models/ur5_scratch --model models/ur5 --encoder models/encoder.pt   (compare)
//   rollout-viewer --plan out/plan_franka_reach.json [--episode 0]     (replay a planning episode)
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "adapt/core/program_options.h"
#include "collect/config.h"
#include "sim/atomic_file.h"
#include "sim/image_io.h"
#include "sim/video.h"
#include "viewer/plan_view.h"
#include "viewer/viewer_app.h"

namespace {

namespace fs = std::filesystem;
using embody::viewer::Screen;

bool HaveDisplay() {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  return (x && *x) || (w && *w);
}

bool Found(const std::string& program) { return std::system(("command -v " + program + " > /dev/null 2>&1").c_str()) == 0; }

// The window's back buffer as a top-down RGB image.
embody::sim::Image ReadWindow(int w, int h) {
  embody::sim::Image im;
  im.width = w;
  im.height = h;
  im.rgb.resize(static_cast<size_t>(w) * h * 3);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, im.rgb.data());
  for (int y = 0; y < h / 2; ++y) {
    std::swap_ranges(im.rgb.begin() + static_cast<size_t>(y) * w * 3, im.rgb.begin() + static_cast<size_t>(y + 1) * w * 3,
                     im.rgb.begin() + static_cast<size_t>(h - 1 - y) * w * 3);
  }
  return im;
}

void Render(GLFWwindow* window, Screen& app, int w, int h) {
  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
  app.HandleInput(window);
  app.Draw(w, h);
  ImGui::Render();
  glViewport(0, 0, w, h);
  glClearColor(0.12f, 0.12f, 0.14f, 1);
  glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
}

// ImGui settles its layout over the first frames (window sizes, fonts): draw a few before exporting.
void Settle(GLFWwindow* window, Screen& app, int w, int h) {
  app.WaitForImagination();
  for (int i = 0; i < 3; ++i) {
    glfwPollEvents();
    Render(window, app, w, h);
  }
}

// The program's options: the viewer's (viewer/viewer_app.h) and what to do with the window.
struct CliOptions {
  embody::viewer::ViewerOptions view;
  std::string screenshot, video, plan;
  int exit_after = 0;
};

void AddOptions(CLI::App& cli, CliOptions& c) {
  embody::viewer::ViewerOptions& o = c.view;
  cli.add_option("--data", o.data, "Embody dataset (.h5)");
  cli.add_option("--plan", c.plan, "Replay planning episodes instead: plan's results JSON (its <stem>_replay.h5 beside it) or the replay .h5");
  cli.add_option("--model", o.models,
                 "Stage-two model folder (adapt --out); several (--model A --model B) are compared side by side; "
                 "without one the dataset alone is shown");
  cli.add_option("--encoder", o.encoders,
                 "The frozen encoder the models were trained on: one for all, or one per --model (default: the one each model records, else "
                 "models/encoder.pt, else the only one in models/)");
  cli.add_option("--camera", o.camera, "Recorded camera")->capture_default_str();
  cli.add_option("--episode", o.episode,
                 "Episode index (0 = first; default: the first held-out episode, what the evaluation measures; with --plan: the replay's "
                 "episodes, default 0)");
  cli.add_option("--frame", o.frame, "Timeline position (default: the first imagined frame)");
  cli.add_option("--context", o.context, "Context model steps before imagination (at most the model's context)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cli.add_option("--horizon", o.horizon,
                 "Imagined frames, in control steps, rounded up to whole model steps (default: the evaluation's, e.g. 40 frames = 2 s at "
                 "20 Hz; 8 without a model)")
      ->check(CLI::Range(1, 256));
  cli.add_option("--start", o.start, "First imagined frame (default: k; the frame before it is the last context frame)");
  cli.add_option("--width", o.width, "Window width")->capture_default_str()->check(CLI::Range(480, 4096));
  cli.add_option("--height", o.height, "Window height")->capture_default_str()->check(CLI::Range(360, 4096));
  cli.add_option("--speed", o.speed, "Playback frames per second (also the video's)")->capture_default_str()->check(CLI::Range(1.0, 120.0));
  cli.add_option("--screenshot", c.screenshot, "Write the side-by-side view at --frame to this PNG and exit");
  cli.add_option("--video", c.video, "Write the whole episode as this MP4 (ffmpeg) and exit");
  cli.add_flag("--play", o.play, "Start playing");
  cli.add_option("--sort-episodes", o.sort_episodes, "Episode list order: 0 by index, K by model K's latent error 1 s ahead (worst first)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--exit-after", c.exit_after, "Close the window after this many frames (smoke tests)")->check(CLI::NonNegativeNumber);
}

// A display to draw on: true when there is one. An export without one re-runs this program under a
// virtual X server (and does not return when it can); anything else is refused, naming the fix.
bool EnsureDisplay(const CliOptions& c, int argc, char** argv) {
  if (HaveDisplay()) return true;
  if (c.screenshot.empty() && c.video.empty()) {
    std::fprintf(stderr,
                 "rollout-viewer: error: no display available (DISPLAY is not set); to export without a screen use "
                 "--screenshot out.png or --video out.mp4\n");
    return false;
  }
  // Exports need an OpenGL window, not a screen: run ourselves under a virtual X server.
  if (std::getenv("EMBODY_VIEWER_XVFB") == nullptr && Found("xvfb-run")) {
    setenv("EMBODY_VIEWER_XVFB", "1", 1);
    std::vector<std::string> args = {"xvfb-run", "-a", "-s",
                                     "-screen 0 " + std::to_string(c.view.width + 64) + "x" + std::to_string(c.view.height + 64) + "x24"};
    for (int i = 0; i < argc; ++i) args.push_back(i == 0 ? fs::canonical("/proc/self/exe").string() : argv[i]);
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    execvp("xvfb-run", cargs.data());
  }
  std::fprintf(stderr, "rollout-viewer: error: no display and no xvfb-run to export with (apt-get install xvfb)\n");
  return false;
}

// The GLFW window with an ImGui context on it (hidden and fixed in size when exporting), or null.
GLFWwindow* OpenWindow(int width, int height, bool exporting) {
  if (!glfwInit()) {
    std::fprintf(stderr, "rollout-viewer: error: cannot open the display (GLFW init failed); use --screenshot or --video\n");
    return nullptr;
  }
  if (exporting) glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
  glfwWindowHint(GLFW_RESIZABLE, exporting ? GLFW_FALSE : GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(width, height, "Embody rollout viewer", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "rollout-viewer: error: cannot create an OpenGL window\n");
    glfwTerminate();
    return nullptr;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 130");
  return window;
}

void CloseWindow(GLFWwindow* window) {
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
}

// --screenshot: the view at --frame as a PNG, and its layout (with the options, which --config
// reads back) beside it.
void WriteScreenshot(GLFWwindow* window, Screen& app, int w, int h, const std::string& screenshot, const CLI::App& cli) {
  Settle(window, app, w, h);
  embody::sim::WritePng(screenshot, ReadWindow(w, h));
  nlohmann::json layout = app.LayoutJson();
  layout["width"] = w;
  layout["height"] = h;
  layout["options"] = embody::adapt::ProgramOptions(cli);  // rollout-viewer --config reads it back
  embody::collect::WriteJsonFileAtomically(screenshot + ".json", layout);
  std::printf("rollout-viewer: wrote %s (%dx%d) and its layout %s.json\n", screenshot.c_str(), w, h, screenshot.c_str());
}

// --video: every frame of the timeline, at --speed.
void WriteTimelineVideo(GLFWwindow* window, Screen& app, int w, int h, const std::string& video, double speed) {
  app.SetFrame(0);
  Settle(window, app, w, h);
  int t = 0;
  embody::sim::WriteVideo(video, w, h, speed, [&](std::vector<std::uint8_t>* frame) {
    if (t >= app.frames()) return false;
    app.SetFrame(t++);
    glfwPollEvents();
    Render(window, app, w, h);
    *frame = ReadWindow(w, h).rgb;
    return true;
  });
  std::printf("rollout-viewer: wrote %s (%d frames at %g fps)\n", video.c_str(), app.frames(), speed);
}

// The window's loop until it is closed (or --exit-after frames).
void Interact(GLFWwindow* window, Screen& app, int exit_after) {
  double last = glfwGetTime();
  for (int drawn = 0; !glfwWindowShouldClose(window) && (exit_after == 0 || drawn < exit_after); ++drawn) {
    glfwPollEvents();
    const double now = glfwGetTime();
    app.Tick(now - last);
    last = now;
    int w = 0, h = 0;
    glfwGetFramebufferSize(window, &w, &h);
    Render(window, app, w, h);
    glfwSwapBuffers(window);
  }
}

// Opens the dataset (and models) or the planning replay, then exports or interacts.
void Show(GLFWwindow* window, const CliOptions& c, const CLI::App& cli) {
  const embody::viewer::ViewerOptions& o = c.view;
  const double opening = glfwGetTime();
  std::unique_ptr<Screen> screen;
  std::string opened = c.plan.empty() ? o.data : c.plan;
  if (c.plan.empty()) {
    screen = std::make_unique<embody::viewer::ViewerApp>(o);
    for (const auto& m : o.models) opened += " and " + m;
  } else {
    screen = std::make_unique<embody::viewer::PlanView>(c.plan, cli.count("--episode") > 0 ? o.episode : 0, o.frame, o.speed);
  }
  Screen& app = *screen;
  std::fprintf(stderr, "rollout-viewer: opened %s in %.2f s\n", opened.c_str(), glfwGetTime() - opening);
  int w = 0, h = 0;
  glfwGetFramebufferSize(window, &w, &h);
  if (!c.screenshot.empty()) WriteScreenshot(window, app, w, h, c.screenshot, cli);
  if (!c.video.empty()) WriteTimelineVideo(window, app, w, h, c.video, o.speed);
  if (c.screenshot.empty() && c.video.empty()) Interact(window, app, c.exit_after);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"rollout-viewer: imagined vs true rollouts, side by side"};
  CliOptions c;
  AddOptions(cli, c);
  embody::adapt::AddConfigOption(cli);
  CLI11_PARSE(cli, argc, argv);
  if (c.view.data.empty() == c.plan.empty()) {
    std::fprintf(stderr, "rollout-viewer: error: give --data DATASET (episodes and imagined rollouts) or --plan RESULTS (a planning replay)\n");
    return 1;
  }
  if (!EnsureDisplay(c, argc, argv)) return 1;
  if (!c.video.empty() && !embody::sim::HaveFfmpeg()) {
    std::fprintf(stderr, "rollout-viewer: error: --video needs ffmpeg (apt-get install ffmpeg; make deps installs it)\n");
    return 1;
  }
  GLFWwindow* window = OpenWindow(c.view.width, c.view.height, !c.screenshot.empty() || !c.video.empty());
  if (!window) return 1;
  int rc = 0;
  try {
    Show(window, c, cli);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rollout-viewer: error: %s\n", e.what());
    rc = 1;
  }
  CloseWindow(window);
  return rc;
}
