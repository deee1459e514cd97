#include "viewer/viewer_app.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <tuple>

#include <GLFW/glfw3.h>
#include <imgui.h>

#include "adapt/core/defaults.h"
#include "adapt/surprise/clips.h"
#include "collect/config.h"
#include "viewer/draw_util.h"

namespace embody::viewer {
namespace {

// The frames the first model's evaluation looks ahead (<model>/metrics.json: horizon model steps of
// frame_skip control steps each; adapt's --eval-seconds); 8 without a model or a readable record.
int EvaluationHorizonFrames(const std::vector<std::string>& models) {
  if (models.empty()) return 8;
  std::ifstream in(std::filesystem::path(models.front()) / "metrics.json");
  try {
    const nlohmann::json m = nlohmann::json::parse(in);
    return std::max(1, m.at("horizon").get<int>() * m.at("frame_skip").get<int>());
  } catch (const std::exception&) {
    return 8;
  }
}

constexpr int kMaxView = 1280;  // MuJoCo's offscreen buffer (views are clamped to it)
// The panels' windows: placed by the viewer, not the user.
constexpr ImGuiWindowFlags kFixedWindow = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                          ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_NoSavedSettings;

}  // namespace

ViewerApp::ViewerApp(const ViewerOptions& options) : options_(options) {
  try {
    dataset_ = std::make_unique<collect::Dataset>(options.data);
    dataset_->CheckAll();
  } catch (const collect::DatasetError& e) {
    throw std::runtime_error(std::string(e.what()));
  }
  if (dataset_->config().empty() || dataset_->demos().empty()) {
    throw std::runtime_error(options.data +
                             " is not an Embody dataset with episodes (no embody_config; the viewer replays Embody's randomized scenes)");
  }
  const std::vector<std::string> valid = dataset_->Mask("valid");
  for (const auto& demo : dataset_->demos()) {
    // Attributes only: episode files are opened, not read.
    episodes_.push_back({demo, dataset_->StringAttr(demo, "task"), dataset_->IntAttr(demo, "success") != 0});
    held_out_.push_back(std::find(valid.begin(), valid.end(), demo) != valid.end());
  }
  if (options_.episode == -1) {  // the first held-out episode: what the evaluation measures
    const auto first = std::find(held_out_.begin(), held_out_.end(), true);
    options_.episode = first == held_out_.end() ? 0 : static_cast<int>(first - held_out_.begin());
  }
  if (options_.episode < 0 || options_.episode >= static_cast<int>(episodes_.size())) {
    throw std::runtime_error("--episode " + std::to_string(options.episode) + " is out of range: " + options.data + " has " +
                             std::to_string(episodes_.size()) + " episodes");
  }
  if (options.encoders.size() > 1 && options.encoders.size() != options.models.size()) {
    throw std::runtime_error("give one --encoder for every model or one per --model (" + std::to_string(options.models.size()) + " models, " +
                             std::to_string(options.encoders.size()) + " encoders)");
  }
  // Model colours, apart from the truth's green and copy-last's red.
  static const ImU32 kPalette[] = {IM_COL32(80, 160, 255, 255), IM_COL32(230, 110, 200, 255), IM_COL32(255, 190, 60, 255),
                                   IM_COL32(160, 120, 255, 255)};
  for (size_t i = 0; i < options.models.size(); ++i) {
    ModelView m;
    const std::filesystem::path folder = std::filesystem::path(options.models[i]).lexically_normal();
    m.label = folder.has_filename() ? folder.filename().string() : folder.parent_path().filename().string();
    const adapt::EncoderArg encoder =
        adapt::ResolveEncoderArg(options.encoders.empty() ? "" : options.encoders[options.encoders.size() == 1 ? 0 : i], options.models[i]);
    if (!encoder.why.empty())
      std::fprintf(stderr, "rollout-viewer: --encoder %s for %s (%s)\n", encoder.path.c_str(), m.label.c_str(), encoder.why.c_str());
    m.imaginer = adapt::Imaginer::Open(options.models[i], options.data, encoder.path, options.camera);
    m.color = kPalette[i % 4];
    models_.push_back(std::move(m));
  }
  if (options.sort_episodes < 0 || options.sort_episodes > static_cast<int>(models_.size())) {
    throw std::runtime_error("--sort-episodes " + std::to_string(options.sort_episodes) + " names no model (0 = by index, 1.." +
                             std::to_string(models_.size()) + " = by that model's error)");
  }
  episode_figures_.assign(episodes_.size(), std::vector<double>(models_.size(), std::nan("")));
  if (options_.horizon <= 0) options_.horizon = EvaluationHorizonFrames(options.models);

  collect::CollectConfig config;
  try {  // the stored configuration (its "identity", see collect/config.h): what the replay needs
    config = collect::CollectConfig::FromIdentity(dataset_->config());
    config.task = "wander";  // replay only re-renders stored states (surprise clips store their own task name)
  } catch (const collect::CollectError& e) {
    throw std::runtime_error(options.data + ": " + e.what());
  }
  runner_ = std::make_unique<collect::EpisodeRunner>(config, /*render=*/false);
  mjModel* m = runner_->world().mutable_model();
  m->vis.global.offwidth = kMaxView;
  m->vis.global.offheight = kMaxView;
  mjv_defaultScene(&scene_);
  mjv_makeScene(m, &scene_, 4000);
  mjv_defaultOption(&vopt_);
  mjv_defaultCamera(&camera_);
  mjr_defaultContext(&context_);
  mjr_makeContext(m, &context_, mjFONTSCALE_100);
  ghost_ = mj_makeData(m);
  const robots::Embodiment& e = runner_->embodiment();
  for (const auto& joint : e.joints) robot_qpos_.push_back(m->jnt_qposadr[mj_name2id(m, mjOBJ_JOINT, joint.c_str())]);
  const int base = mj_name2id(m, mjOBJ_BODY, e.base_body.c_str());
  robot_body_.assign(m->nbody, false);
  for (int b = 0; b < m->nbody; ++b) {
    for (int p = b; p > 0; p = m->body_parentid[p]) {
      if (p == base) robot_body_[b] = true;
    }
  }
  glGenTextures(4, textures_);
  for (unsigned int t : textures_) SetupTexture(t);
  for (auto& m : models_) {
    glGenTextures(1, &m.texture);
    SetupTexture(m.texture);
  }
  LoadEpisode(options_.episode);
  FitOrbit();  // once: the user's orbit is kept when the episode changes
  SetFrame(options.frame >= 0 ? options.frame : start_);
  playing_ = options.play;
}

ViewerApp::~ViewerApp() {
  WaitForWorker();
  glDeleteTextures(4, textures_);
  for (auto& m : models_) glDeleteTextures(1, &m.texture);
  mj_deleteData(ghost_);
  mjr_freeContext(&context_);
  mjv_freeScene(&scene_);
}

void ViewerApp::LoadEpisode(int index) {
  WaitForWorker();  // HDF5 is used by one thread at a time
  episode_ = index;
  const std::string& demo = episodes_[index].demo;
  std::vector<hsize_t> dims;
  frames_ = dataset_->ReadFrames(demo, options_.camera, 0, static_cast<hsize_t>(dataset_->NumSamples(demo)), &dims);
  episode_frames_ = static_cast<int>(dims[0]);
  image_size_ = static_cast<int>(dims[1]);
  states_ = dataset_->Read<double>(demo, embody::collect::keys::kStates, &dims);
  state_dim_ = static_cast<int>(dims[1]);
  draw_ = collect::Draw::FromJson(nlohmann::json::parse(dataset_->StringAttr(demo, "randomization")));
  surprise_ = {};
  if (adapt::IsScoredSurpriseClip(*dataset_, demo)) {
    const adapt::SurpriseClipInfo info = adapt::ReadSurpriseClipInfo(*dataset_, demo);
    const adapt::SurpriseClipCurves curves = adapt::ReadSurpriseClipCurves(*dataset_, demo);
    surprise_.model.assign(curves.model.begin(), curves.model.end());
    surprise_.copy_last.assign(curves.copy_last.begin(), curves.copy_last.end());
    surprise_.frame_skip = curves.frame_skip;
    surprise_.violation_frame = info.violation_frame;
    surprise_.label = std::string(info.possible ? "possible" : "impossible") + " clip, " + info.violation + " (" + info.variant + ")";
  }
  runner_->Prepare(draw_);
  for (auto& m : models_) m.imagination.reset();
  frame_ = std::min(frame_, episode_frames_ - 1);
  RequestImagination();
}

void ViewerApp::RequestImagination() {
  if (models_.empty()) return;
  WaitForWorker();
  start_ = std::clamp(options_.start >= 0 ? options_.start : options_.context, options_.context, std::max(options_.context, episode_frames_ - 1));
  imagination_error_.clear();
  const std::string demo = episodes_[episode_].demo;
  const int start = start_, k = options_.context, h = options_.horizon;
  std::vector<adapt::Imaginer*> imaginers;
  for (auto& m : models_) imaginers.push_back(m.imaginer.get());
  pending_ = std::async(std::launch::async, [=] {
    std::vector<adapt::Imagination> all;
    for (adapt::Imaginer* imaginer : imaginers) all.push_back(imaginer->Imagine(demo, start, k, h));
    return all;
  });
}

void ViewerApp::PollImagination() {
  if (!pending_.valid() || pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  try {
    auto all = pending_.get();
    for (size_t i = 0; i < all.size() && i < models_.size(); ++i) models_[i].imagination = std::make_unique<adapt::Imagination>(std::move(all[i]));
    ++imagination_generation_;
  } catch (const std::exception& e) {
    imagination_error_ = e.what();
  }
}

void ViewerApp::WaitForWorker() {
  if (pending_.valid()) pending_.wait();
  if (figures_pending_.valid()) figures_pending_.wait();
}

void ViewerApp::ScheduleFigures() {
  if (figures_pending_.valid() && figures_pending_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    try {
      auto chunk = figures_pending_.get();
      for (size_t i = 0; i < chunk.size(); ++i) episode_figures_[figures_first_ + i] = chunk[i];
    } catch (const std::exception&) {
      // an episode too short to imagine 1 s ahead stays NaN
    }
  }
  if (models_.empty() || pending_.valid() || figures_pending_.valid() || next_figure_ >= static_cast<int>(episodes_.size())) return;
  constexpr int kChunk = 4;  // short jobs: the UI waits at most one of them before it reads HDF5 itself
  figures_first_ = next_figure_;
  std::vector<std::string> demos;
  for (int i = next_figure_; i < std::min<int>(next_figure_ + kChunk, episodes_.size()); ++i) demos.push_back(episodes_[i].demo);
  next_figure_ += static_cast<int>(demos.size());
  std::vector<adapt::Imaginer*> imaginers;
  for (auto& m : models_) imaginers.push_back(m.imaginer.get());
  const int context = options_.context, horizon = std::max(1, static_cast<int>(std::lround(ControlHz())));  // 1 s of frames
  figures_pending_ = std::async(std::launch::async, [=] {
    std::vector<std::vector<double>> out;
    for (const auto& demo : demos) {
      std::vector<double> row;
      for (adapt::Imaginer* imaginer : imaginers) {
        double value = std::nan("");
        try {
          const adapt::Imagination im = imaginer->Imagine(demo, context, context, horizon, /*retrieval_episodes=*/0);
          if (!im.latent_l1.empty()) value = im.latent_l1.back();  // 1 s ahead, or the last frame of a shorter episode
        } catch (const std::exception&) {
        }
        row.push_back(value);
      }
      out.push_back(row);
    }
    return out;
  });
}

std::vector<int> ViewerApp::EpisodeOrder() const {
  std::vector<int> order(episodes_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  const int k = options_.sort_episodes - 1;
  if (k < 0 || k >= static_cast<int>(models_.size())) return order;
  auto figure = [&](int i) {
    const double v = episode_figures_[i][k];
    return std::isnan(v) ? -1.0 : v;  // not yet computed: last
  };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return figure(a) > figure(b); });
  return order;
}

double ViewerApp::ControlHz() const {
  double hz = 20;  // the effective control rate is the env_args' (the config's 0 means the robot's own)
  try {
    hz = dataset_->control_hz();
  } catch (const collect::DatasetError&) {
  }
  return hz > 0 ? hz : 20;
}

void ViewerApp::WaitForImagination() {
  if (pending_.valid()) pending_.wait();
  PollImagination();
  while (options_.sort_episodes > 0 && (next_figure_ < static_cast<int>(episodes_.size()) || figures_pending_.valid())) {
    if (figures_pending_.valid()) figures_pending_.wait();
    ScheduleFigures();
  }
}

void ViewerApp::SetFrame(int t) {
  frame_ = std::clamp(t, 0, episode_frames_ - 1);
  runner_->world().SetState(states_.data() + static_cast<size_t>(frame_) * state_dim_, state_dim_);
}

void ViewerApp::Tick(double seconds) {
  if (!playing_) return;
  play_clock_ += seconds * options_.speed;
  while (play_clock_ >= 1) {
    play_clock_ -= 1;
    SetFrame(frame_ + 1 >= episode_frames_ ? 0 : frame_ + 1);
  }
}

nlohmann::json ViewerApp::LayoutJson() const {
  const Layout& l = layout_;
  nlohmann::json layout = {{"episode", demo()},
                           {"held_out", static_cast<bool>(held_out_[episode_])},
                           {"frame", frame_},
                           {"horizon_frames", options_.horizon},
                           {"true_frame", l.true_frame},
                           {"scale", l.scale},
                           {"true_view", l.true_view},
                           {"imagined_view", l.imagined_view},
                           {"surprise_plot", l.surprise_plot},
                           {"violation_x", l.violation_x},
                           {"robot_box", l.robot_box},
                           {"imagined_frames", l.imagined_frames},
                           {"models", options_.models},
                           {"latent_plot", l.latent_plot},
                           {"latent_series", l.latent_series}};
  nlohmann::json figures = nlohmann::json::object(), order = nlohmann::json::array();
  for (size_t i = 0; i < episode_figures_.size(); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (double v : episode_figures_[i]) row.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v));
    figures[demo_name(static_cast<int>(i))] = row;
  }
  for (int i : EpisodeOrder()) order.push_back(demo_name(i));
  layout["episode_figures"] = figures;
  layout["episode_order"] = order;
  return layout;
}

void ViewerApp::UploadFrame(const std::uint8_t* rgb, int w, int h, unsigned int texture) { UploadTexture(texture, rgb, w, h); }

void ViewerApp::FitOrbit() {
  // The robot and the scene's free objects at the first stored state, as an axis-aligned box of their
  // geoms' bounding spheres; the orbit looks at its centre from far enough that its bounding sphere
  // fits the narrower of the view's field-of-view angles (views are about as wide as tall).
  sim::World& world = runner_->world();
  world.SetState(states_.data(), state_dim_);
  const mjModel* m = world.model();
  const mjData* d = world.data();
  std::vector<bool> framed = robot_body_;
  for (int b : runner_->scene().object_bodies) framed[b] = true;
  for (int k = 0; k < 3; ++k) box_lo_[k] = mjMAXVAL, box_hi_[k] = -mjMAXVAL;
  for (int g = 0; g < m->ngeom; ++g) {
    if (!framed[m->geom_bodyid[g]] || m->geom_type[g] == mjGEOM_PLANE) continue;
    for (int k = 0; k < 3; ++k) {
      box_lo_[k] = std::min(box_lo_[k], d->geom_xpos[3 * g + k] - m->geom_rbound[g]);
      box_hi_[k] = std::max(box_hi_[k], d->geom_xpos[3 * g + k] + m->geom_rbound[g]);
    }
  }
  double radius = 0;
  for (int k = 0; k < 3; ++k) {
    camera_.lookat[k] = 0.5 * (box_lo_[k] + box_hi_[k]);
    radius += 0.25 * (box_hi_[k] - box_lo_[k]) * (box_hi_[k] - box_lo_[k]);
  }
  radius = std::sqrt(radius);
  const double half = std::atan(std::tan(22.5 * M_PI / 180) * 0.85);  // fovy 45, aspect down to 0.85
  camera_.type = mjCAMERA_FREE;
  camera_.distance = 1.05 * radius / std::sin(half);
  camera_.azimuth = 160;
  camera_.elevation = -25;
}

std::array<int, 4> ViewerApp::ProjectedBox(int width, int height) const {
  // Through the camera of the last rendered scene: OpenGL's projection of the box's corners (near
  // plane, frustum top/bottom from fovy, left/right from the view's aspect), in view pixels.
  const mjvGLCamera& c = scene_.camera[0];
  const double right[3] = {c.forward[1] * c.up[2] - c.forward[2] * c.up[1], c.forward[2] * c.up[0] - c.forward[0] * c.up[2],
                           c.forward[0] * c.up[1] - c.forward[1] * c.up[0]};
  const double half_w = 0.5 * (c.frustum_top - c.frustum_bottom) * width / std::max(1, height);
  std::array<int, 4> box = {1 << 30, 1 << 30, -(1 << 30), -(1 << 30)};
  for (int corner = 0; corner < 8; ++corner) {
    double v[3], x = 0, y = 0, z = 0;
    for (int k = 0; k < 3; ++k) v[k] = ((corner >> k) & 1 ? box_hi_[k] : box_lo_[k]) - c.pos[k];
    for (int k = 0; k < 3; ++k) x += v[k] * right[k], y += v[k] * c.up[k], z += v[k] * c.forward[k];
    if (z <= 1e-6) return {-1, -1, -1, -1};  // behind the camera: certainly not framed
    const double xn = x * c.frustum_near / z, yn = y * c.frustum_near / z;
    const int px = static_cast<int>(std::lround((xn - (c.frustum_center - half_w)) / (2 * half_w) * width));
    const int py = static_cast<int>(std::lround((1 - (yn - c.frustum_bottom) / (c.frustum_top - c.frustum_bottom)) * height));
    box = {std::min(box[0], px), std::min(box[1], py), std::max(box[2], px), std::max(box[3], py)};
  }
  return box;
}

void ViewerApp::RenderScene(bool ghost, int width, int height, unsigned int texture) {
  mjModel* m = runner_->world().mutable_model();
  mjData* d = runner_->world().mutable_data();  // mjv_updateScene takes it non-const; it only reads it
  width = std::clamp(width, 16, kMaxView);
  height = std::clamp(height, 16, kMaxView);
  mjvCamera cam = camera_;
  if (use_recorded_camera_) {
    const int c = std::max(0, std::atoi(options_.camera.c_str() + std::min<size_t>(6, options_.camera.size())));
    const sim::Camera& rc = draw_.cameras[std::min<size_t>(c, draw_.cameras.size() - 1)];
    cam = sim::OrbitCameraFor(rc);
    m->vis.global.fovy = static_cast<float>(rc.fovy_deg);  // free cameras take the model's fovy (the viewer's own runner)
  } else {
    m->vis.global.fovy = 45;
  }
  mjv_updateScene(m, d, &vopt_, nullptr, &cam, mjCAT_ALL, &scene_);
  for (const ModelView& model : models_) {
    const adapt::Imagination* im = model.imagination.get();
    if (!ghost || !im || frame_ < im->start || frame_ >= im->start + im->horizon) continue;
    sim::PoseGhost(m, d, robot_qpos_, im->proprio[frame_ - im->start], ghost_);
    const int before = scene_.ngeom;
    mjv_addGeoms(m, ghost_, &vopt_, nullptr, mjCAT_DYNAMIC, &scene_);
    int kept = before;
    for (int i = before; i < scene_.ngeom; ++i) {
      mjvGeom g = scene_.geoms[i];
      if (g.objtype != mjOBJ_GEOM || !robot_body_[m->geom_bodyid[g.objid]]) continue;
      for (int c = 0; c < 3; ++c) g.rgba[c] = static_cast<float>((model.color >> (8 * c)) & 0xFF) / 255.0f;  // the model's colour
      g.rgba[3] = 0.35f;
      g.transparent = 1;
      g.segid = kept;
      scene_.geoms[kept++] = g;
    }
    scene_.ngeom = kept;
  }
  const mjrRect viewport{0, 0, width, height};
  mjr_setBuffer(mjFB_OFFSCREEN, &context_);
  mjr_render(viewport, &scene_, &context_);
  pixels_.resize(static_cast<size_t>(width) * height * 3);
  mjr_readPixels(pixels_.data(), nullptr, viewport, &context_);
  mjr_setBuffer(mjFB_WINDOW, &context_);
  // OpenGL rows start at the bottom.
  for (int y = 0; y < height / 2; ++y) {
    std::swap_ranges(pixels_.begin() + static_cast<size_t>(y) * width * 3, pixels_.begin() + static_cast<size_t>(y + 1) * width * 3,
                     pixels_.begin() + static_cast<size_t>(height - 1 - y) * width * 3);
  }
  UploadFrame(pixels_.data(), width, height, texture);
}

void ViewerApp::Draw(int width, int height) {
  PollImagination();
  ScheduleFigures();
  const int bottom = std::min(240, height / 3), top_h = height - bottom, half = width / 2;
  const int s = image_size_;
  const int scale = std::max(1, std::min(4, (top_h - 80) / std::max(1, 2 * s)));
  layout_.scale = scale;
  const int view_w = std::max(16, half - s * scale - 36), view_h = std::max(16, top_h - 60);
  const bool orbit_left = DrawTruePanel(half, top_h, view_w, view_h);
  const bool orbit_right = DrawImaginedPanel(width - half, half, top_h, view_w, view_h);
  // Mouse on a 3-D view moves the orbit camera (ImGui keeps it everywhere else).
  if ((orbit_left || orbit_right) && !use_recorded_camera_) MoveOrbit(view_h);
  ImGui::SetNextWindowPos(ImVec2(0, static_cast<float>(top_h)));
  ImGui::SetNextWindowSize(ImVec2(static_cast<float>(width / 3), static_cast<float>(bottom)));
  ImGui::Begin("Controls", nullptr, kFixedWindow);
  DrawControls();
  ImGui::End();
  DrawPlots(width, height, bottom);
  if (show_help_) DrawHelp(width, height);
}

bool ViewerApp::DrawTruePanel(int half, int top_h, int view_w, int view_h) {
  const int s = image_size_, scale = layout_.scale;
  // Left: the true rollout. Textures are uploaded only when what they show changes.
  const std::string recorded_key = demo() + " " + std::to_string(frame_);
  if (recorded_key != texture_keys_[0]) {
    UploadFrame(frames_.data() + static_cast<size_t>(frame_) * s * s * 3, s, s, textures_[0]);
    texture_keys_[0] = recorded_key;
  }
  RenderScene(false, view_w, view_h, textures_[2]);
  const auto box = ProjectedBox(std::clamp(view_w, 16, kMaxView), std::clamp(view_h, 16, kMaxView));
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(ImVec2(static_cast<float>(half), static_cast<float>(top_h)));
  ImGui::Begin("True rollout", nullptr, kFixedWindow);
  ImGui::Text("%s (%s)  frame %d/%d  recorded (left), re-rendered from the stored state (right)", demo().c_str(),
              held_out_[episode_] ? "held out" : "training", frame_, episode_frames_ - 1);
  if (!surprise_.label.empty()) ImGui::Text("%s, violation at frame %d", surprise_.label.c_str(), surprise_.violation_frame);
  ImVec2 p = ImGui::GetCursorScreenPos();
  layout_.true_frame[0] = static_cast<int>(p.x);
  layout_.true_frame[1] = static_cast<int>(p.y);
  layout_.true_frame[2] = layout_.true_frame[3] = s * scale;
  ImGui::Image(Tex(textures_[0]), ImVec2(static_cast<float>(s * scale), static_cast<float>(s * scale)));  // pixel-exact, no overlay
  ImGui::SameLine();
  p = ImGui::GetCursorScreenPos();
  layout_.true_view[0] = static_cast<int>(p.x), layout_.true_view[1] = static_cast<int>(p.y), layout_.true_view[2] = view_w,
  layout_.true_view[3] = view_h;
  for (int k = 0; k < 4; ++k) layout_.robot_box[k] = box[k] + layout_.true_view[k % 2];
  ImGui::Image(Tex(textures_[2]), ImVec2(static_cast<float>(view_w), static_cast<float>(view_h)));
  const bool orbit_left = ImGui::IsItemHovered();
  ImGui::End();
  return orbit_left;
}

bool ViewerApp::DrawImaginedPanel(int width, int left, int top_h, int view_w, int view_h) {
  const int s = image_size_, scale = layout_.scale;
  // Right: the imagined rollout.
  RenderScene(show_ghost_, view_w, view_h, textures_[3]);
  ImGui::SetNextWindowPos(ImVec2(static_cast<float>(left), 0));
  ImGui::SetNextWindowSize(ImVec2(static_cast<float>(width), static_cast<float>(top_h)));
  ImGui::Begin("Imagined rollout", nullptr, kFixedWindow);
  const adapt::Imagination* first = primary();
  int h = -1;
  if (models_.empty()) {
    ImGui::TextWrapped("no model: pass --model models/<robot> to imagine (dataset-only view)");
  } else if (!imagination_error_.empty()) {
    ImGui::TextWrapped("imagination failed: %s", imagination_error_.c_str());
  } else if (!first) {
    ImGui::Text("imagining from frame %d ...", start_);
  } else {
    h = frame_ - first->start;
    if (h < 0)
      ImGui::Text("frame %d is context (imagination starts at %d)", frame_, first->start);
    else if (h >= first->horizon)
      ImGui::Text("past the horizon (frames %d..%d imagined: %.2f s; --horizon, the slider)", first->start, first->start + first->horizon - 1,
                  first->horizon / ControlHz());
    else
      ImGui::Text("imagined frame %d/%d (%.2f s ahead): %s (left), dynamics ghost%s (right)", h + 1, first->horizon, (h + 1) / ControlHz(),
                  first->decoded.empty() ? "nearest real frame" : "decoded latents", models_.size() > 1 ? "s" : "");
  }
  // One imagined frame per model, stacked (each under its name when there are several).
  const int n = std::max<int>(1, static_cast<int>(models_.size()));
  const float side = std::max(16.0f, std::min(static_cast<float>(s * scale), (top_h - 70.0f) / n - (n > 1 ? 18.0f : 0.0f)));
  layout_.imagined_frames.clear();
  ImGui::BeginGroup();
  for (ModelView& m : models_) {
    if (models_.size() > 1) ImGui::TextColored(ImColor(m.color), "%s", m.label.c_str());
    DrawImaginedFrame(m, side);
  }
  if (models_.empty()) ImGui::Dummy(ImVec2(side, side));
  ImGui::EndGroup();
  ImGui::SameLine();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  layout_.imagined_view[0] = static_cast<int>(p.x), layout_.imagined_view[1] = static_cast<int>(p.y);
  layout_.imagined_view[2] = view_w, layout_.imagined_view[3] = view_h;
  ImGui::Image(Tex(textures_[3]), ImVec2(static_cast<float>(view_w), static_cast<float>(view_h)));
  const bool orbit_right = ImGui::IsItemHovered();
  if (show_overlay_ && first && h >= 0 && h < first->horizon) {
    std::string text;
    for (const ModelView& m : models_) {
      const adapt::Imagination* im = m.imagination.get();
      if (!im || h >= static_cast<int>(im->latent_l1.size())) continue;
      char line[256];
      std::snprintf(line, sizeof line, "%s%slatent L1 %.4f (copy-last %.4f)\nee error %.2f cm, joints %.3f rad\n",
                    models_.size() > 1 ? m.label.c_str() : "", models_.size() > 1 ? ": " : "", im->latent_l1[h], im->copy_last_l1[h],
                    im->ee_error_cm[h], im->joint_error_rad[h]);
      text += line;
    }
    if (first->decoded.empty()) text += "nearest: " + first->nearest_demo[h] + " frame " + std::to_string(first->nearest_frame[h]);
    ImGui::GetWindowDrawList()->AddText(ImVec2(p.x + 8, p.y + 8), IM_COL32(255, 255, 255, 255), text.c_str());
  }
  ImGui::End();
  return orbit_right;
}

void ViewerApp::MoveOrbit(int view_h) {
  ImGuiIO& io = ImGui::GetIO();
  const mjModel* m = runner_->world().model();
  const double dx = io.MouseDelta.x / view_h, dy = io.MouseDelta.y / view_h;
  if (ImGui::IsMouseDragging(ImGuiMouseButton_Left)) mjv_moveCamera(m, mjMOUSE_ROTATE_H, dx, dy, &scene_, &camera_);
  if (ImGui::IsMouseDragging(ImGuiMouseButton_Right)) mjv_moveCamera(m, mjMOUSE_MOVE_H, dx, dy, &scene_, &camera_);
  if (io.MouseWheel != 0) mjv_moveCamera(m, mjMOUSE_ZOOM, 0, -0.05 * io.MouseWheel, &scene_, &camera_);
}

void ViewerApp::DrawHelp(int width, int height) {
  ImGui::SetNextWindowPos(ImVec2(width * 0.3f, height * 0.2f), ImGuiCond_Appearing);
  ImGui::Begin("Help", &show_help_, ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoSavedSettings);
  ImGui::Text(
      "space      play / pause\nleft/right step one frame\n[ / ]      previous / next episode\n"
      "g          ghost on/off\no          overlay on/off\nc          orbit / recorded camera\nh          this help\n"
      "mouse on a 3-D view: left drag orbit, right drag pan, wheel zoom");
  ImGui::End();
}

void ViewerApp::DrawControls() {
  // An episode's line: task, success, robot, and each model's latent error 1 s ahead once computed.
  auto line = [&](int i) {
    const auto& x = episodes_[i];
    std::string item = x.demo + "  " + x.task + (x.success ? "  success" : "  fail") + "  " + runner_->embodiment().name;
    for (size_t k = 0; k < models_.size(); ++k) {
      char figure[64];
      const double v = episode_figures_[i][k];
      std::snprintf(figure, sizeof figure, std::isnan(v) ? "  %s ..." : "  %s %.3f", models_[k].label.c_str(), v);
      item += figure;
    }
    return item;
  };
  if (ImGui::BeginCombo("episode", line(episode_).c_str())) {
    for (int i : EpisodeOrder()) {
      if (ImGui::Selectable(line(i).c_str(), i == episode_) && i != episode_) LoadEpisode(i), SetFrame(frame_);
    }
    ImGui::EndCombo();
  }
  if (!models_.empty()) {
    std::string items = std::string("index") + '\0';
    for (const auto& m : models_) items += "worst 1 s latent error: " + m.label + '\0';
    ImGui::SetNextItemWidth(220);
    ImGui::Combo("sort episodes", &options_.sort_episodes, items.c_str());
  }
  int t = frame_;
  if (ImGui::SliderInt("frame", &t, 0, episode_frames_ - 1)) SetFrame(t);
  if (ImGui::Button(playing_ ? "pause" : "play")) playing_ = !playing_;
  ImGui::SameLine();
  if (ImGui::Button("<")) SetFrame(frame_ - 1);
  ImGui::SameLine();
  if (ImGui::Button(">")) SetFrame(frame_ + 1);
  ImGui::SameLine();
  float speed = static_cast<float>(options_.speed);
  ImGui::SetNextItemWidth(120);
  if (ImGui::SliderFloat("fps", &speed, 1, 60)) options_.speed = speed;
  bool changed = false;
  ImGui::SetNextItemWidth(100);
  changed |= ImGui::SliderInt("context k", &options_.context, 1, 8);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(100);
  changed |= ImGui::SliderInt("horizon", &options_.horizon, 1, std::max(64, options_.horizon), "%d frames");
  ImGui::SameLine();
  ImGui::Text("(%.2f s)", options_.horizon / ControlHz());
  int start = start_;
  ImGui::SetNextItemWidth(150);
  if (ImGui::SliderInt("imagine from", &start, options_.context, std::max(options_.context, episode_frames_ - 1))) {
    options_.start = start;
    changed = true;
  }
  if (changed && !models_.empty()) RequestImagination();
  int cam = use_recorded_camera_ ? 1 : 0;
  ImGui::SetNextItemWidth(150);
  if (ImGui::Combo("camera", &cam, "orbit\0recorded\0")) use_recorded_camera_ = cam == 1;
  ImGui::Checkbox("ghost", &show_ghost_);
  ImGui::SameLine();
  ImGui::Checkbox("overlay", &show_overlay_);
  ImGui::SameLine();
  ImGui::Checkbox("help (h)", &show_help_);
}

void ViewerApp::DrawPlots(int width, int height, int bottom) {
  const ImGuiWindowFlags fixed = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings;
  const ImVec2 size(static_cast<float>(width), static_cast<float>(height));
  const float w = size.x / 3;
  const float plot_height = static_cast<float>(bottom) - 40;
  ImGui::SetNextWindowPos(ImVec2(w, size.y - bottom));
  ImGui::SetNextWindowSize(ImVec2(w, bottom));
  ImGui::Begin(surprise_.model.empty() ? "Latent error over the imagined steps" : "Surprise along the clip", nullptr, fixed);
  if (!surprise_.model.empty()) {
    DrawSurprise(plot_height);
  } else if (primary()) {
    // Every model and copy-last on one set of axes.
    // Copy-last first: the models' curves are drawn over it.
    std::vector<Series> series = {{"copy-last", &primary()->copy_last_l1, IM_COL32(240, 90, 80, 255)}};
    for (const ModelView& m : models_) {
      if (m.imagination) series.push_back({m.label.c_str(), &m.imagination->latent_l1, m.color});
    }
    SeriesPlot(series, primary()->seconds_per_frame, "latent L1", plot_height, layout_.latent_plot);
    layout_.latent_series.clear();
    for (const Series& x : series) layout_.latent_series.push_back(x.label);
  } else {
    ImGui::TextDisabled("(no imagination)");
  }
  ImGui::End();
  ImGui::SetNextWindowPos(ImVec2(2 * w, size.y - bottom));
  ImGui::SetNextWindowSize(ImVec2(size.x - 2 * w, bottom));
  ImGui::Begin("Dynamics model error", nullptr, fixed);
  if (primary()) {
    std::vector<Series> series;
    for (const ModelView& m : models_) {
      if (m.imagination) series.push_back({m.label.c_str(), &m.imagination->ee_error_cm, m.color});
    }
    SeriesPlot(series, primary()->seconds_per_frame, "ee error (cm)", plot_height);
  } else {
    ImGui::TextDisabled("(no imagination)");
  }
  ImGui::End();
}

void ViewerApp::DrawImaginedFrame(ModelView& m, float side) {
  // The imagined latents as a picture: the decoder's, or else the nearest real frame (read from the
  // dataset once per change, and never while the worker thread uses HDF5).
  const adapt::Imagination* im = m.imagination.get();
  const int h = im ? frame_ - im->start : -1;
  const bool in_horizon = im && h >= 0 && h < im->horizon;
  const bool decoded = in_horizon && !im->decoded.empty();
  const std::string key = !in_horizon ? ""
                          : decoded   ? "decoded " + std::to_string(imagination_generation_) + " " + std::to_string(h)
                                      : im->nearest_demo[h] + " " + std::to_string(im->nearest_frame[h]);
  if (in_horizon && key != m.texture_key) {
    if (decoded) {
      UploadFrame(im->decoded[h].data(), im->decoded_size, im->decoded_size, m.texture);
      m.texture_key = key;
    } else if (!pending_.valid() && !figures_pending_.valid()) {
      const auto nearest = dataset_->ReadFrames(im->nearest_demo[h], options_.camera, im->nearest_frame[h], 1);
      UploadFrame(nearest.data(), image_size_, image_size_, m.texture);
      m.texture_key = key;
    }
  }
  const ImVec2 at = ImGui::GetCursorScreenPos();
  layout_.imagined_frames.push_back({static_cast<int>(at.x), static_cast<int>(at.y), static_cast<int>(side), static_cast<int>(side)});
  if (in_horizon && key == m.texture_key) {
    ImGui::Image(Tex(m.texture), ImVec2(side, side));
    DrawReadout(m, at, side);
  } else {
    ImGui::Dummy(ImVec2(side, side));
  }
}

void ViewerApp::DrawReadout(const ModelView& m, ImVec2 origin, float side) {
  const adapt::Imagination* im = m.imagination.get();
  if (!show_overlay_ || !im || im->image_size <= 0 || im->readout_ee_uv.empty()) return;
  const int h = frame_ - im->start;
  if (h < 0 || h >= im->horizon) return;
  // The end effector read out of the imagined latents (the model's colour) and where it truly is
  // (green), from the start of the imagination up to this frame.
  const float scale = side / im->image_size;
  ImDrawList* draw = ImGui::GetWindowDrawList();
  auto at = [&](const std::array<double, 2>& uv) {
    return ImVec2(origin.x + static_cast<float>(std::clamp(uv[0], 0.0, 1.0 * im->image_size)) * scale,
                  origin.y + static_cast<float>(std::clamp(uv[1], 0.0, 1.0 * im->image_size)) * scale);
  };
  const ImU32 truth = IM_COL32(60, 220, 90, 255), imagined = m.color;
  for (int i = 1; i <= h; ++i) {
    draw->AddLine(at(im->true_ee_uv[i - 1]), at(im->true_ee_uv[i]), truth, 2.0f);
    draw->AddLine(at(im->readout_ee_uv[i - 1]), at(im->readout_ee_uv[i]), imagined, 2.0f);
  }
  draw->AddCircle(at(im->true_ee_uv[h]), 6.0f, truth, 12, 2.0f);
  draw->AddCircle(at(im->readout_ee_uv[h]), 6.0f, imagined, 12, 2.0f);
  if (side >= 120) {
    draw->AddText(ImVec2(origin.x + 4, origin.y + side - 30), truth, "ee: true");
    draw->AddText(ImVec2(origin.x + 4, origin.y + side - 16), imagined, "ee: imagined (read-out)");
  }
}

void ViewerApp::DrawSurprise(float height) {
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = ImGui::GetContentRegionAvail().x;
  ImGui::Dummy(ImVec2(width, height));
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const float left = origin.x + 44, right = origin.x + width - 6, top = origin.y + 4, bottom = origin.y + height - 18;
  layout_.surprise_plot[0] = static_cast<int>(left), layout_.surprise_plot[1] = static_cast<int>(top);
  layout_.surprise_plot[2] = static_cast<int>(right - left), layout_.surprise_plot[3] = static_cast<int>(bottom - top);
  double hi = 0;
  for (const auto* v : {&surprise_.model, &surprise_.copy_last}) {
    for (double x : *v) hi = std::isfinite(x) ? std::max(hi, x) : hi;
  }
  hi = hi > 0 ? 1.1 * hi : 1;
  const int last = std::max(1, episode_frames_ - 1);
  auto x_of = [&](double frame) { return left + (right - left) * static_cast<float>(frame / last); };
  const ImU32 axis = IM_COL32(180, 180, 180, 255);
  DrawYAxis(draw, origin.x, left, right, top, bottom, hi);
  char text[48];
  const double hz = ControlHz();
  for (int i = 0; i <= 4; ++i) {  // x ticks: seconds into the clip
    std::snprintf(text, sizeof text, "%.2gs", last * i / 4.0 / hz);
    draw->AddText(ImVec2(x_of(last * i / 4.0) - 10, bottom + 2), axis, text);
  }
  // The violation (red) and the frame shown (white).
  const ImU32 violation = IM_COL32(255, 60, 60, 255);
  layout_.violation_x = static_cast<int>(std::lround(x_of(surprise_.violation_frame)));
  draw->AddLine(ImVec2(static_cast<float>(layout_.violation_x), top), ImVec2(static_cast<float>(layout_.violation_x), bottom), violation, 2.0f);
  draw->AddLine(ImVec2(x_of(frame_), top), ImVec2(x_of(frame_), bottom), IM_COL32(255, 255, 255, 160), 1.0f);
  float legend_y = top + 2;
  // Copy-last first: the model's curve is drawn over it (an untrained model's is the same curve).
  for (const auto& [label, values, color] : {std::tuple{"copy-last", &surprise_.copy_last, IM_COL32(255, 170, 60, 255)},
                                             std::tuple{"model", &surprise_.model, IM_COL32(80, 160, 255, 255)}}) {
    for (size_t i = 1; i < values->size(); ++i) {
      auto at = [&](size_t k) {
        return ImVec2(x_of(static_cast<double>((k + 1) * surprise_.frame_skip)),
                      bottom - (bottom - top) * static_cast<float>(std::clamp((*values)[k] / hi, 0.0, 1.0)));
      };
      draw->AddLine(at(i - 1), at(i), color, 2.0f);
    }
    const float text_width = ImGui::CalcTextSize(label).x;
    draw->AddLine(ImVec2(right - text_width - 28, legend_y + 7), ImVec2(right - text_width - 10, legend_y + 7), color, 2.0f);
    draw->AddText(ImVec2(right - text_width - 6, legend_y), color, label);
    legend_y += 15;
  }
  draw->AddText(ImVec2(left + 4, top + 2), axis, "latent L1");
  draw->AddText(ImVec2(left + 4, top + 17), violation, "violation");
}

void ViewerApp::HandleInput(GLFWwindow*) {
  const ImGuiIO& io = ImGui::GetIO();
  if (io.WantCaptureKeyboard) return;
  if (ImGui::IsKeyPressed(GLFW_KEY_SPACE)) playing_ = !playing_;
  if (ImGui::IsKeyPressed(GLFW_KEY_RIGHT)) SetFrame(frame_ + 1);
  if (ImGui::IsKeyPressed(GLFW_KEY_LEFT)) SetFrame(frame_ - 1);
  if (ImGui::IsKeyPressed(GLFW_KEY_RIGHT_BRACKET) && episode_ + 1 < static_cast<int>(episodes_.size())) LoadEpisode(episode_ + 1), SetFrame(frame_);
  if (ImGui::IsKeyPressed(GLFW_KEY_LEFT_BRACKET) && episode_ > 0) LoadEpisode(episode_ - 1), SetFrame(frame_);
  if (ImGui::IsKeyPressed(GLFW_KEY_G)) show_ghost_ = !show_ghost_;
  if (ImGui::IsKeyPressed(GLFW_KEY_O)) show_overlay_ = !show_overlay_;
  if (ImGui::IsKeyPressed(GLFW_KEY_C)) use_recorded_camera_ = !use_recorded_camera_;
  if (ImGui::IsKeyPressed(GLFW_KEY_H)) show_help_ = !show_help_;
}

}  // namespace embody::viewer
