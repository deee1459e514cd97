// rollout-viewer --plan: replays planning episodes that `plan` recorded (adapt/plan/plan_replay.h): the goal
// image, the frame before each model step, the plan the model imagined there (decoded, when the model
// had a decoder.pt), and the energy and distance curves with the current step marked.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "adapt/plan/plan_replay.h"
#include "viewer/screen.h"

namespace embody::viewer {

class PlanView : public Screen {
 public:
  /// `path`: plan's results JSON (the replay file it names, or <stem>_replay.h5 beside it) or the
  /// replay .h5 itself. `episode` indexes the replay's episodes; `step` < 0 starts at 0.
  /// @throws std::runtime_error naming the file and what is wrong.
  PlanView(const std::string& path, int episode, int step, double speed);
  ~PlanView() override;
  void Draw(int width, int height) override;
  void Tick(double seconds) override;
  int frames() const override { return replay_.episodes[episode_].steps + 1; }
  void SetFrame(int t) override;
  nlohmann::json LayoutJson() const override;

 private:
  void Upload();
  adapt::PlanReplayFile replay_;
  std::string path_;
  int episode_ = 0, step_ = 0, uploaded_episode_ = -1, uploaded_step_ = -1;
  double speed_ = 2, clock_ = 0;
  bool playing_ = false;
  std::vector<unsigned int> textures_;  ///< goal, executed, then one per imagined step
  // Where the last frame drew things (pixels, top-left origin).
  std::array<int, 4> goal_box_{}, executed_box_{};
  std::vector<std::array<int, 4>> imagined_boxes_;
  int energy_plot_[5] = {0, 0, 0, 0, -1}, distance_plot_[5] = {0, 0, 0, 0, -1}, error_plot_[5] = {0, 0, 0, 0, -1};
};

}  // namespace embody::viewer
