#include "viewer/plan_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <GLFW/glfw3.h>
#include <imgui.h>

#include "viewer/draw_util.h"

namespace embody::viewer {
namespace fs = std::filesystem;
namespace {

// The replay file for what the user named: the .h5 itself, or plan's results JSON (its "replay" key,
// else <stem>_replay.h5 beside it).
fs::path ReplayPath(const std::string& given) {
  const fs::path p(given);
  if (p.extension() != ".json") return p;
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + given + " (plan --out writes it, with its replay beside it)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(given + " is not JSON: " + e.what());
  }
  if (j.contains("replay") && j["replay"].is_string()) {
    const fs::path named = j["replay"].get<std::string>();
    return named.is_absolute() ? named : p.parent_path() / named.filename();
  }
  return p.parent_path() / (p.stem().string() + "_replay.h5");
}

std::array<int, 4> Box(ImVec2 at, float w, float h) {
  return {static_cast<int>(at.x), static_cast<int>(at.y), static_cast<int>(w), static_cast<int>(h)};
}

}  // namespace

PlanView::PlanView(const std::string& path, int episode, int step, double speed) : speed_(speed) {
  const fs::path file = ReplayPath(path);
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw std::runtime_error("no planning replay " + file.string() + " (plan writes it beside its results: plan ... --replay-episodes N)");
  }
  path_ = file.string();
  replay_ = adapt::ReadPlanReplayFile(file);
  const int n = static_cast<int>(replay_.episodes.size());
  if (episode < 0 || episode >= n) {
    throw std::runtime_error("--episode " + std::to_string(episode) + ": the replay holds " + std::to_string(n) + " episodes (0.." +
                             std::to_string(n - 1) + ")");
  }
  episode_ = episode;
  textures_.resize(2 + replay_.horizon);
  glGenTextures(static_cast<int>(textures_.size()), textures_.data());
  for (unsigned int t : textures_) SetupTexture(t);
  SetFrame(std::max(0, step));
}

PlanView::~PlanView() { glDeleteTextures(static_cast<int>(textures_.size()), textures_.data()); }

void PlanView::SetFrame(int t) { step_ = std::clamp(t, 0, frames() - 1); }

void PlanView::Tick(double seconds) {
  if (!playing_) return;
  clock_ += seconds * speed_;
  while (clock_ >= 1) {
    clock_ -= 1;
    SetFrame(step_ + 1 >= frames() ? 0 : step_ + 1);
  }
}

void PlanView::Upload() {
  if (uploaded_episode_ == episode_ && uploaded_step_ == step_) return;
  const auto& e = replay_.episodes[episode_];
  const int s = replay_.image_size;
  UploadTexture(textures_[0], e.Target(step_, s), s, s);
  UploadTexture(textures_[1], e.Frame(step_, s), s, s);
  if (step_ < e.steps) {
    for (int h = 0; h < replay_.horizon; ++h) {
      if (const std::uint8_t* img = e.Imagined(step_, h, replay_.horizon, s)) UploadTexture(textures_[2 + h], img, s, s);
    }
  }
  uploaded_episode_ = episode_;
  uploaded_step_ = step_;
}

void PlanView::Draw(int width, int height) {
  Upload();
  const auto& e = replay_.episodes[episode_];
  const int s = replay_.image_size;
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(ImVec2(static_cast<float>(width), static_cast<float>(height)));
  ImGui::Begin("plan replay", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoBringToFrontOnFocus);
  ImGui::Text("plan %s %s (%s): episode %d, %s, %.1f cm -> %.1f cm (success within %.0f cm), model steps of %d control steps",
              replay_.embodiment.c_str(), replay_.task.c_str(), replay_.model.c_str(), e.episode, e.success ? "success" : "miss",
              e.distance_cm.front(), e.distance_cm.back(), replay_.success_cm, replay_.frame_skip);
  int episode = episode_;
  ImGui::SetNextItemWidth(160);
  if (ImGui::InputInt("episode", &episode) && episode >= 0 && episode < static_cast<int>(replay_.episodes.size())) {
    episode_ = episode;
    SetFrame(0);
  }
  ImGui::SameLine();
  int step = step_;
  ImGui::SetNextItemWidth(std::max(120.0f, width * 0.35f));
  if (ImGui::SliderInt("model step", &step, 0, frames() - 1)) SetFrame(step);
  ImGui::SameLine();
  ImGui::Checkbox("play", &playing_);

  // Goal | executed | the plan imagined at this step (horizon frames).
  const float gap = 10;
  const int panels = 2 + replay_.horizon;
  const float side = std::floor(std::min((width - 2 * gap - (panels - 1) * gap - gap) / panels, height * 0.42f));
  ImGui::Spacing();
  const ImVec2 row = ImGui::GetCursorScreenPos();
  auto image = [&](int index, const char* caption, std::array<int, 4>* box) {
    ImGui::BeginGroup();
    *box = Box(ImGui::GetCursorScreenPos(), side, side);
    ImGui::Image(Tex(textures_[index]), ImVec2(side, side));
    ImGui::TextUnformatted(caption);
    ImGui::EndGroup();
  };
  const bool subgoal = !std::equal(e.goal.begin(), e.goal.end(), e.Target(step_, s));
  image(0, subgoal ? "subgoal image (aimed at in this step)" : "goal image", &goal_box_);
  ImGui::SameLine(0, gap);
  char caption[96];
  std::snprintf(caption, sizeof caption, "executed, step %d: %.1f cm to go", step_, e.distance_cm[step_]);
  image(1, caption, &executed_box_);
  imagined_boxes_.clear();
  const bool decoded = !e.imagined.empty() && step_ < e.steps;
  for (int h = 0; h < replay_.horizon; ++h) {
    if (decoded) {
      ImGui::SameLine(0, h == 0 ? 3 * gap : gap);
      imagined_boxes_.push_back({});
      std::snprintf(caption, sizeof caption, "imagined plan +%d", h + 1);
      image(2 + h, caption, &imagined_boxes_.back());
    } else if (h == 0) {  // drawn, not laid out: the rows below stay where they are
      const char* why =
          step_ >= e.steps ? "end of the episode: no plan" : "no decoded plan: the model folder had no decoder.pt (adapt --train-decoder)";
      ImGui::GetWindowDrawList()->AddText(ImVec2(executed_box_[0] + side + 3 * gap, row.y + side / 2), IM_COL32(220, 220, 220, 255), why);
    }
  }
  ImGui::SetCursorScreenPos(ImVec2(row.x, row.y + side + ImGui::GetTextLineHeightWithSpacing() + gap));

  // The plan's energy and the distance to the goal per model step, the current step marked.
  const bool errors = !e.model_error.empty();  // and the model's next-frame error, before and after online adaptation
  const float plots = errors ? 3.0f : 2.0f;
  const float plot_height = std::max(80.0f, (height - ImGui::GetCursorScreenPos().y - plots * gap) / plots - gap);
  // One x axis for both: the energy has no value at the final frame (no plan there).
  std::vector<double> energy(e.energy.begin(), e.energy.end());
  energy.push_back(std::nan(""));
  SeriesPlot({{"energy of the chosen plan (L1 to the goal latent)", &energy, IM_COL32(31, 119, 180, 255)}}, 1.0, "energy", plot_height, energy_plot_,
             " step", step_ < e.steps ? step_ : -1, true, /*integer_x=*/true);
  const std::vector<double> radius(e.distance_cm.size(), replay_.success_cm);
  SeriesPlot({{"distance to the goal (cm)", &e.distance_cm, IM_COL32(255, 127, 14, 255)}, {"success radius", &radius, IM_COL32(44, 160, 44, 255)}},
             1.0, "cm", plot_height, distance_plot_, " step", step_, true, /*integer_x=*/true);
  if (errors) {
    std::vector<double> error(e.model_error.begin(), e.model_error.end());
    error.push_back(std::nan(""));
    std::vector<Series> series = {{e.model_error_frozen.empty() ? "the model's next-frame error (latent L1)" : "next-frame error, adapted online",
                                   &error, IM_COL32(31, 119, 180, 255)}};
    if (!e.model_error_frozen.empty()) series.push_back({"the same episode, not adapted", &e.model_error_frozen, IM_COL32(255, 127, 14, 255)});
    SeriesPlot(series, 1.0, "error", plot_height, error_plot_, " step", step_ < e.steps ? step_ : -1, true, /*integer_x=*/true);
  }
  ImGui::End();
}

nlohmann::json PlanView::LayoutJson() const {
  const auto& e = replay_.episodes[episode_];
  return {{"replay", path_},
          {"episode", e.episode},
          {"step", step_},
          {"steps", e.steps},
          {"success", e.success},
          {"decoded", !e.imagined.empty()},
          {"goal_image", goal_box_},
          {"executed_frame", executed_box_},
          {"imagined_frames", imagined_boxes_},
          {"energy_plot", std::vector<int>(energy_plot_, energy_plot_ + 5)},
          {"distance_plot", std::vector<int>(distance_plot_, distance_plot_ + 5)},
          {"model_error_plot", std::vector<int>(error_plot_, error_plot_ + 5)}};
}

}  // namespace embody::viewer
