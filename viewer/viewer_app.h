// The rollout viewer: the true rollout (recorded frames and the scene re-rendered from the stored
// states, orbit camera) beside the imagined one (the dynamics model's robot as a translucent ghost
// over the true scene, and for the predicted latents the nearest real frame), with error plots.
// The app owns no model or format logic: it calls collect/ (datasets, replay) and adapt/ (the
// torch-free Imaginer). Needs a current OpenGL context (a GLFW window) while it lives.
#pragma once

#include <array>
#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <imgui.h>
#include <mujoco/mujoco.h>

#include "adapt/world_model/imagine.h"
#include "collect/dataset.h"
#include "collect/episode.h"
#include "viewer/screen.h"

struct GLFWwindow;

namespace embody::viewer {

struct ViewerOptions {
  std::string data, camera = "camera0";
  /// Stage-two model folders to compare (none: the dataset alone), and the encoder of each (one for
  /// all, or one per model in the same order).
  std::vector<std::string> models, encoders;  ///< none: each model's own (adapt/core/defaults.h)
  int episode = -1;                           ///< index into the dataset's episode list; -1: the first held-out episode (/mask/valid)
  int frame = -1;                             ///< timeline position; -1: the first imagined frame
  int context = 4;
  int horizon = 0;  ///< imagined frames (control steps); 0: the evaluation's (the first model's metrics.json), else 8
  int start = -1;   ///< first imagined frame; -1: the context length
  int width = 1280, height = 720;
  double speed = 10;  ///< frames per second when playing (and in --video)
  bool play = false;  ///< start playing
  /// Episode list order: 0 by index, k >= 1 by model k's latent error 1 s ahead, worst first (the
  /// per-episode figures are computed in the background; exports wait for all of them when k > 0).
  int sort_episodes = 0;
};

/// Where things landed in the last frame drawn (pixels, origin top-left), for tests and reports.
struct Layout {
  int true_frame[4] = {0, 0, 0, 0};  ///< the recorded frame image: x, y, w, h
  int scale = 1;                     ///< recorded frame pixels per image pixel
  int true_view[4] = {0, 0, 0, 0}, imagined_view[4] = {0, 0, 0, 0};
  int surprise_plot[4] = {0, 0, 0, 0};              ///< the surprise curve's axes box (surprise clips only)
  int violation_x = -1;                             ///< where the violation frame is marked on it
  int robot_box[4] = {0, 0, 0, 0};                  ///< the robot and objects' bounding box projected in the true view: x0, y0, x1, y1
  std::vector<std::array<int, 4>> imagined_frames;  ///< per model, its imagined frame: x, y, w, h
  int latent_plot[4] = {0, 0, 0, 0};                ///< the overlaid latent-error plot's axes box
  std::vector<std::string> latent_series;           ///< what it shows, in drawing order
};

class ViewerApp : public Screen {
 public:
  /// Opens the dataset (lazily: episode files are read when shown) and the model, if any.
  /// @throws std::runtime_error with a clear message.
  explicit ViewerApp(const ViewerOptions& options);
  ~ViewerApp() override;

  /// Builds and renders one frame into the current framebuffer (width x height).
  void Draw(int width, int height) override;
  /// Handles input that is not ImGui's (keys, mouse on the 3-D views). Call once per frame.
  void HandleInput(GLFWwindow* window) override;
  /// Advances playback by `seconds` of wall time.
  void Tick(double seconds) override;
  /// Blocks until the imagination for the current settings is ready (exports).
  void WaitForImagination() override;

  /// Per episode (in dataset order), each model's latent L1 1 s ahead of its first imagined frame (or
  /// at the last frame of a shorter episode; NaN until computed), and the episode list's order.
  const std::vector<std::vector<double>>& episode_figures() const { return episode_figures_; }
  std::vector<int> EpisodeOrder() const;
  int frames() const override { return episode_frames_; }
  int frame() const { return frame_; }
  void SetFrame(int t) override;
  /// The layout, the episode figures and their order, as the screenshot's JSON.
  nlohmann::json LayoutJson() const override;
  const Layout& layout() const { return layout_; }
  const std::string& demo() const { return episodes_[episode_].demo; }
  const std::string& demo_name(int index) const { return episodes_[index].demo; }

 private:
  struct EpisodeInfo {
    std::string demo, task;
    bool success = false;
  };
  void LoadEpisode(int index);
  void RequestImagination();
  void PollImagination();
  void RenderScene(bool ghost, int width, int height, unsigned int texture);
  void UploadFrame(const std::uint8_t* rgb, int w, int h, unsigned int texture);
  /// The top panels: the true rollout (left half) and the imagined one (`width` wide from `left`),
  /// each with its 3-D view of view_w x view_h; true when the mouse is on that view (the orbit's).
  bool DrawTruePanel(int half, int top_h, int view_w, int view_h);
  bool DrawImaginedPanel(int width, int left, int top_h, int view_w, int view_h);
  /// The orbit camera follows the mouse's drag and wheel.
  void MoveOrbit(int view_h);
  void DrawHelp(int width, int height);
  void DrawControls();
  void DrawPlots(int width, int height, int bottom);
  struct ModelView;
  /// The read-out overlay (true vs imagined end-effector trajectory) of one model on its imagined frame at `origin`.
  void DrawReadout(const ModelView& model, ImVec2 origin, float side);
  /// One model's imagined frame for the current frame (decoded, or the nearest real frame), sized `side`.
  void DrawImaginedFrame(ModelView& model, float side);
  /// The surprise curves of a clip written by `surprise --clips`, the violation frame marked.
  void DrawSurprise(float height);
  /// Points the orbit camera at the robot and the scene's objects so that all of them are in view.
  void FitOrbit();
  /// That box projected through the last rendered camera into a width x height view (pixels).
  std::array<int, 4> ProjectedBox(int width, int height) const;

  ViewerOptions options_;
  std::unique_ptr<collect::Dataset> dataset_;
  std::vector<EpisodeInfo> episodes_;
  // The models compared: each imagines from the same start; all are computed on one worker thread
  // (HDF5 is used by one thread at a time), the first one's imagination sets the panel's header.
  struct ModelView {
    std::string label;
    std::unique_ptr<adapt::Imaginer> imaginer;
    std::unique_ptr<adapt::Imagination> imagination;
    ImU32 color = 0;
    unsigned int texture = 0;
    std::string texture_key;
  };
  std::vector<ModelView> models_;
  // The episode being shown.
  int episode_ = -1, episode_frames_ = 0, image_size_ = 0, frame_ = 0;
  std::vector<std::uint8_t> frames_;  ///< (T, S, S, 3) of the chosen camera
  std::vector<bool> held_out_;        ///< per episode: in /mask/valid (what the evaluation uses)
  std::vector<double> states_;
  int state_dim_ = 0;
  // A surprise clip's record (empty for collected episodes): what it shows and the model's surprise.
  struct SurpriseClip {
    std::string label;
    int violation_frame = -1, frame_skip = 1;
    std::vector<double> model, copy_last;  ///< one value per model step, at frames (i + 1) * frame_skip
  };
  SurpriseClip surprise_;
  double box_lo_[3] = {0, 0, 0}, box_hi_[3] = {0, 0, 0};  ///< what the orbit frames (world, m)
  collect::Draw draw_;
  std::unique_ptr<collect::EpisodeRunner> runner_;  // the randomized scene, for replay
  std::vector<int> robot_qpos_;                     // qpos address of each controlled joint
  std::vector<bool> robot_body_;
  // Imagination (computed off the UI thread).
  std::future<std::vector<adapt::Imagination>> pending_;
  // Per-episode figures, computed a few episodes at a time on the worker when it is otherwise idle.
  std::future<std::vector<std::vector<double>>> figures_pending_;
  std::vector<std::vector<double>> episode_figures_;
  int next_figure_ = 0, figures_first_ = 0;
  void ScheduleFigures();
  void WaitForWorker();      ///< HDF5 is used by one thread at a time: wait for both jobs
  double ControlHz() const;  ///< the dataset's effective control rate
  std::string imagination_error_;
  /// The first model's imagination, or null (what the shared parts of the panel follow).
  const adapt::Imagination* primary() const { return models_.empty() ? nullptr : models_[0].imagination.get(); }
  int start_ = 0;
  // MuJoCo rendering into the window's GL context.
  mjvScene scene_{};
  mjvCamera camera_{};
  mjvOption vopt_{};
  mjrContext context_{};
  mjData* ghost_ = nullptr;
  bool use_recorded_camera_ = false, show_ghost_ = true, show_overlay_ = true, show_help_ = false, playing_ = false;
  double play_clock_ = 0;
  unsigned int textures_[4] = {0, 0, 0, 0};  // true frame, (unused), true view, imagined view
  std::string texture_keys_[2];              // what textures_[0] holds now
  int imagination_generation_ = 0;
  std::vector<std::uint8_t> pixels_;
  Layout layout_;
  double last_x_ = 0, last_y_ = 0;
};

}  // namespace embody::viewer
