// rollout-viewer: imagined vs true rollouts, side by side.
//   rollout-viewer --data data/ur5.h5 [--model models/ur5] [--episode 3]
//   rollout-viewer --data data/ur5.h5 --model models/ur5 --screenshot out.png     (no screen needed)
//   rollout-viewer --data data/ur5.h5 --model models/ur5 --video out.mp4
//   rollout-viewer --data data/ur5.h5 --model models/ur5_scratch --model models/ur5 --encoder models/encoder.pt   (compare)
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

#include "collect/config.h"
#include "sim/atomic_file.h"
#include "sim/image_io.h"
#include "viewer/viewer_app.h"

namespace {

namespace fs = std::filesystem;
using embody::viewer::ViewerApp;

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

void Render(GLFWwindow* window, ViewerApp& app, int w, int h) {
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
void Settle(GLFWwindow* window, ViewerApp& app, int w, int h) {
  app.WaitForImagination();
  for (int i = 0; i < 3; ++i) {
    glfwPollEvents();
    Render(window, app, w, h);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"rollout-viewer: imagined vs true rollouts, side by side"};
  embody::viewer::ViewerOptions o;
  std::string screenshot, video;
  int exit_after = 0;
  cli.add_option("--data", o.data, "Embody dataset (.h5)")->required();
  cli.add_option("--model", o.models,
                 "Stage-two model folder (adapt --out); several (--model A --model B) are compared side by side; "
                 "without one the dataset alone is shown");
  cli.add_option("--encoder", o.encoders, "The frozen encoder the models were trained on: one for all, or one per --model")->capture_default_str();
  cli.add_option("--camera", o.camera, "Recorded camera")->capture_default_str();
  cli.add_option("--episode", o.episode, "Episode index (0 = first)")->capture_default_str();
  cli.add_option("--frame", o.frame, "Timeline position (default: the first imagined frame)");
  cli.add_option("--context", o.context, "Context model steps before imagination (at most the model's context)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cli.add_option("--horizon", o.horizon, "Imagined frames (rounded up to whole model steps)")->capture_default_str()->check(CLI::Range(1, 256));
  cli.add_option("--start", o.start, "First imagined frame (default: k; the frame before it is the last context frame)");
  cli.add_option("--width", o.width, "Window width")->capture_default_str()->check(CLI::Range(480, 4096));
  cli.add_option("--height", o.height, "Window height")->capture_default_str()->check(CLI::Range(360, 4096));
  cli.add_option("--speed", o.speed, "Playback frames per second (also the video's)")->capture_default_str()->check(CLI::Range(1.0, 120.0));
  cli.add_option("--screenshot", screenshot, "Write the side-by-side view at --frame to this PNG and exit");
  cli.add_option("--video", video, "Write the whole episode as this MP4 (ffmpeg) and exit");
  cli.add_flag("--play", o.play, "Start playing");
  cli.add_option("--sort-episodes", o.sort_episodes, "Episode list order: 0 by index, K by model K's latent error 1 s ahead (worst first)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--exit-after", exit_after, "Close the window after this many frames (smoke tests)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(cli, argc, argv);
  const bool exporting = !screenshot.empty() || !video.empty();
  if (!HaveDisplay()) {
    if (!exporting) {
      std::fprintf(stderr,
                   "rollout-viewer: error: no display available (DISPLAY is not set); to export without a screen use "
                   "--screenshot out.png or --video out.mp4\n");
      return 1;
    }
    // Exports need an OpenGL window, not a screen: run ourselves under a virtual X server.
    if (std::getenv("EMBODY_VIEWER_XVFB") == nullptr && Found("xvfb-run")) {
      setenv("EMBODY_VIEWER_XVFB", "1", 1);
      std::vector<std::string> args = {"xvfb-run", "-a", "-s",
                                       "-screen 0 " + std::to_string(o.width + 64) + "x" + std::to_string(o.height + 64) + "x24"};
      for (int i = 0; i < argc; ++i) args.push_back(i == 0 ? fs::canonical("/proc/self/exe").string() : argv[i]);
      std::vector<char*> cargs;
      for (auto& a : args) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      execvp("xvfb-run", cargs.data());
    }
    std::fprintf(stderr, "rollout-viewer: error: no display and no xvfb-run to export with (apt-get install xvfb)\n");
    return 1;
  }
  if (!video.empty() && !Found("ffmpeg")) {
    std::fprintf(stderr, "rollout-viewer: error: --video needs ffmpeg (apt-get install ffmpeg; make deps installs it)\n");
    return 1;
  }
  if (!glfwInit()) {
    std::fprintf(stderr, "rollout-viewer: error: cannot open the display (GLFW init failed); use --screenshot or --video\n");
    return 1;
  }
  if (exporting) glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
  glfwWindowHint(GLFW_RESIZABLE, exporting ? GLFW_FALSE : GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(o.width, o.height, "Embody rollout viewer", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "rollout-viewer: error: cannot create an OpenGL window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 130");
  int rc = 0;
  try {
    const double opening = glfwGetTime();
    ViewerApp app(o);
    std::string models;
    for (const auto& m : o.models) models += " and " + m;
    std::fprintf(stderr, "rollout-viewer: opened %s%s in %.2f s\n", o.data.c_str(), models.c_str(), glfwGetTime() - opening);
    int w = 0, h = 0;
    glfwGetFramebufferSize(window, &w, &h);
    if (!screenshot.empty()) {
      Settle(window, app, w, h);
      embody::sim::WritePng(screenshot, ReadWindow(w, h));
      const auto& l = app.layout();
      nlohmann::json layout = {{"width", w},
                               {"height", h},
                               {"episode", app.demo()},
                               {"frame", o.frame},
                               {"true_frame", l.true_frame},
                               {"scale", l.scale},
                               {"true_view", l.true_view},
                               {"imagined_view", l.imagined_view},
                               {"surprise_plot", l.surprise_plot},
                               {"violation_x", l.violation_x},
                               {"robot_box", l.robot_box},
                               {"imagined_frames", l.imagined_frames},
                               {"models", o.models},
                               {"latent_plot", l.latent_plot},
                               {"latent_series", l.latent_series}};
      nlohmann::json figures = nlohmann::json::object(), order = nlohmann::json::array();
      for (size_t i = 0; i < app.episode_figures().size(); ++i) {
        nlohmann::json row = nlohmann::json::array();
        for (double v : app.episode_figures()[i]) row.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v));
        figures[app.demo_name(static_cast<int>(i))] = row;
      }
      for (int i : app.EpisodeOrder()) order.push_back(app.demo_name(i));
      layout["episode_figures"] = figures;
      layout["episode_order"] = order;
      embody::collect::WriteJsonFileAtomically(screenshot + ".json", layout);
      std::printf("rollout-viewer: wrote %s (%dx%d) and its layout %s.json\n", screenshot.c_str(), w, h, screenshot.c_str());
    }
    if (!video.empty()) {
      app.SetFrame(0);
      Settle(window, app, w, h);
      embody::sim::WriteFileAtomically(video, [&](const fs::path& tmp) {
        char cmd[1024];
        std::snprintf(cmd, sizeof cmd,
                      "ffmpeg -y -loglevel error -f rawvideo -pix_fmt rgb24 -s %dx%d -r %g -i - -c:v libx264 -pix_fmt yuv420p -f mp4 '%s'", w, h,
                      o.speed, tmp.c_str());
        FILE* pipe = popen(cmd, "w");
        if (!pipe) throw std::runtime_error("cannot start ffmpeg");
        for (int t = 0; t < app.frames(); ++t) {
          app.SetFrame(t);
          glfwPollEvents();
          Render(window, app, w, h);
          const auto im = ReadWindow(w, h);
          fwrite(im.rgb.data(), 1, im.rgb.size(), pipe);
        }
        if (pclose(pipe) != 0) throw std::runtime_error("ffmpeg failed to write " + video);
      });
      std::printf("rollout-viewer: wrote %s (%d frames at %g fps)\n", video.c_str(), app.frames(), o.speed);
    }
    if (!exporting) {
      double last = glfwGetTime();
      for (int drawn = 0; !glfwWindowShouldClose(window) && (exit_after == 0 || drawn < exit_after); ++drawn) {
        glfwPollEvents();
        const double now = glfwGetTime();
        app.Tick(now - last);
        last = now;
        glfwGetFramebufferSize(window, &w, &h);
        Render(window, app, w, h);
        glfwSwapBuffers(window);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rollout-viewer: error: %s\n", e.what());
    rc = 1;
  }
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
