#include "collect/episode.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

namespace embody::collect {
namespace {

/// How far --layout-change one moves a group's object at least (m).
constexpr double kLayoutMinMove = 0.08;

}  // namespace

EpisodeRunner::EpisodeRunner(const CollectConfig& config, bool render) : config_(config), embodiment_(robots::FindEmbodiment(config.robot)) {
  if (config.control_hz > 0) embodiment_.control_hz = config.control_hz;
  nominal_ = sim::LoadModelFile(embodiment_.mjcf);
  world_ = std::make_unique<sim::World>(sim::MjModelPtr(mj_copyModel(nullptr, nominal_.get())));
  controller_ = std::make_unique<sim::RobotController>(world_->model(), embodiment_);
  randomizer_ = std::make_unique<SceneRandomizer>(nominal_.get(), embodiment_);
  if (render) renderer_ = std::make_unique<sim::Renderer>(world_->model(), sim::RenderOptions{config.image_size, config.image_size});
  substeps_ = sim::PhysicsStepsPerControl(embodiment_, nominal_.get());
  scene_.object_bodies = randomizer_->object_bodies();
  const int table = mj_name2id(nominal_.get(), mjOBJ_GEOM, "table");
  if (table >= 0) scene_.table_top = nominal_->geom_pos[3 * table + 2] + nominal_->geom_size[3 * table + 2];
  // Gripper joints: slide joints of the robot that are not controlled arm joints (the fingers).
  const mjModel* m = nominal_.get();
  const int base = sim::RequireId(m, mjOBJ_BODY, embodiment_.base_body);
  for (int j = 0; j < m->njnt; ++j) {
    if (m->jnt_type[j] != mjJNT_SLIDE) continue;
    int b = m->jnt_bodyid[j];
    while (b > 0 && b != base) b = m->body_parentid[b];
    if (b == base) gripper_qpos_.push_back(m->jnt_qposadr[j]);
  }
  if (embodiment_.ee_sites.size() > 1) {  // recorded as obs/robot0_sites_pos (a humanoid's hands)
    for (const std::string& site : embodiment_.ee_sites) site_ids_.push_back(sim::RequireId(m, mjOBJ_SITE, site));
  }
  if (config.eye_in_hand) {
    if (embodiment_.eye_in_hand_camera.empty()) {
      throw CollectError("--eye-in-hand: " + embodiment_.name +
                         " has no camera on its hand; add \"eye_in_hand_camera\": \"<an MJCF camera in the hand's body>\" to its descriptor");
    }
    if (mj_name2id(m, mjOBJ_CAMERA, embodiment_.eye_in_hand_camera.c_str()) < 0) {
      throw CollectError(embodiment_.name + "'s eye_in_hand_camera \"" + embodiment_.eye_in_hand_camera + "\" is not a camera of " +
                         embodiment_.mjcf.string());
    }
    eye_in_hand_ = embodiment_.eye_in_hand_camera;
  }
  // The tasks last: the MJCF's own problems (a broken file, no actuators, a missing site) are
  // reported before the roles a task needs.
  try {
    tasks_ = TasksFor(embodiment_, config.task);
  } catch (const std::invalid_argument& e) {
    throw CollectError(e.what());
  }
}

void EpisodeRunner::Prepare(const Draw& draw) {
  draw_ = draw;
  randomizer_->ApplyToModel(draw, world_->mutable_model());
  world_->Reset();
  controller_->ResetToHome(world_.get());
  randomizer_->PlaceObjects(draw, world_->model(), world_->mutable_data());
  world_->Forward();
}

EpisodeData EpisodeRunner::Run(std::int64_t index) {
  constexpr int kMaxAttempts = 20;
  for (int attempt = 0;; ++attempt) {
    try {
      EpisodeData ep = Attempt(index, attempt);
      ep.attempts = attempt + 1;
      return ep;
    } catch (const sim::UnstableError& e) {
      if (attempt + 1 >= kMaxAttempts) {
        throw sim::UnstableError("episode " + std::to_string(index) + " went unstable " + std::to_string(kMaxAttempts) +
                                 " times in a row; last: " + e.what());
      }
      std::fprintf(stderr, "simcollect: warning: episode %lld attempt %d unstable, redrawn (%s)\n", static_cast<long long>(index), attempt + 1,
                   e.what());
    }
  }
}

Draw EpisodeRunner::DrawScene(int num_cameras, Rng* rng, const std::function<void(Draw*)>& edit) {
  Draw draw = randomizer_->Sample(config_.randomization, num_cameras, rng);
  if (edit) edit(&draw);
  Prepare(draw);
  world_->Step(kSettleSteps);  // the objects settle on the table before anything acts
  return draw;
}

EpisodeData EpisodeRunner::Attempt(std::int64_t index, int attempt) {
  const std::int64_t group = index / config_.layouts_per_scene, place = index % config_.layouts_per_scene;
  // --group-actions shared: the group's first episode gives its task and actions to the others. It is
  // run here again without frames: the same index and attempts as the collector's, so the same episode.
  std::optional<EpisodeData> first;
  if (config_.group_actions == "shared" && place > 0) {
    std::unique_ptr<sim::Renderer> renderer = std::move(renderer_);
    try {
      first = Run(index - place);
    } catch (...) {
      renderer_ = std::move(renderer);
      throw;
    }
    renderer_ = std::move(renderer);
  }
  Rng rng = Rng::ForEpisode(config_.seed, index, attempt);
  DrawScene(config_.cameras, &rng, [&](Draw* draw) {
    if (config_.layouts_per_scene <= 1) return;
    // The group's scene from a stream of its own (the same for every episode and attempt of the
    // group: an unstable draw redraws only the layout), this episode's object layout kept.
    Rng scene_rng = Rng::ForEpisode(config_.seed ^ 0x5CE9E5CE9E5CE9E5ull, group, 0);
    Draw scene = randomizer_->Sample(config_.randomization, config_.cameras, &scene_rng);
    if (config_.layout_change == "one") {
      // The group's layout; the group's n-th episode (n >= 1) moves object (n - 1) mod #objects of it,
      // by at least 8 cm (4-8 px at 64 px), drawn from this episode's stream.
      if (place > 0 && !scene.objects.empty()) {
        const std::size_t moved = static_cast<std::size_t>(place - 1) % scene.objects.size();
        randomizer_->MoveObject(config_.randomization, moved, kLayoutMinMove, &scene, &rng);
      }
    } else {
      scene.objects = draw->objects;
    }
    *draw = scene;
  });

  Task task = tasks_[rng.Int(0, static_cast<int>(tasks_.size()) - 1)];
  const double noise = rng.Uniform(0.0, 0.1);
  const bool perturb = rng.Bernoulli(0.15);
  const int perturb_start = rng.Int(0, config_.steps - 1), perturb_len = rng.Int(3, 8);
  if (first) {  // the first episode's task: its goal is what this episode's rewards score
    task = *std::find_if(tasks_.begin(), tasks_.end(), [&](Task t) { return TaskName(t) == first->task; });
  }
  std::shared_ptr<Policy> policy = MakePolicy(task, *controller_, scene_, *world_, &rng);
  EpisodeScript script;
  script.task = TaskName(task);
  const std::size_t action_dim = static_cast<std::size_t>(embodiment_.action_dim());
  script.action = [&](int t, const sim::World& world) {
    if (first) {  // open loop: the first episode's action t, noise and excursions included
      const auto begin = first->actions.begin() + static_cast<std::ptrdiff_t>(t * action_dim);
      return std::vector<double>(begin, begin + static_cast<std::ptrdiff_t>(action_dim));
    }
    std::vector<double> action = policy->Act(world);
    for (double& a : action) a = std::clamp(a + rng.Normal(0, noise), -1.0, 1.0);
    if (perturb && t >= perturb_start && t < perturb_start + perturb_len) {
      for (double& a : action) a = rng.Uniform(-1, 1);  // an off-expert excursion
    }
    return action;
  };
  script.success = [&](const sim::World& world) { return policy->Success(world); };
  EpisodeData ep = RunScript(index, config_.steps, script);
  ep.noise = first ? first->noise : noise;
  if (config_.layouts_per_scene > 1) ep.extra_attrs["scene_group"] = group;
  if (first) ep.extra_attrs["actions_of"] = index - place;  // the episode whose actions it replays
  return ep;
}

EpisodeData EpisodeRunner::RunScript(std::int64_t index, int steps, const EpisodeScript& script) {
  EpisodeData ep;
  ep.index = index;
  ep.seed = config_.seed;
  ep.draw = draw_.ToJson();
  ep.task = script.task;
  const mjModel* m = world_->model();
  ep.steps = steps;
  ep.image_size = config_.image_size;
  ep.num_cameras = static_cast<int>(draw_.cameras.size());
  ep.action_dim = embodiment_.action_dim();
  ep.num_joints = controller_->num_joints();
  ep.state_dim = world_->state_size();
  ep.object_dim = 7 * static_cast<int>(scene_.object_bodies.size());
  ep.gripper_dim = static_cast<int>(gripper_qpos_.size());
  if (embodiment_.ee_sites.size() > 1) ep.site_names = embodiment_.ee_sites;
  ep.images.resize(ep.num_cameras);
  for (const auto& camera : draw_.cameras) {
    const auto k = sim::CameraIntrinsics(camera.fovy_deg, config_.image_size, config_.image_size);
    ep.intrinsics.push_back({k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1});
    ep.extrinsics.push_back(sim::CameraPose(m, world_->data(), camera));
  }
  if (!eye_in_hand_.empty()) {
    const auto k = sim::CameraIntrinsics(sim::CameraFovy(m, sim::Camera::Named(eye_in_hand_)), config_.image_size, config_.image_size);
    ep.eye_in_hand_intrinsics = {k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1};
  }
  for (int t = 0; t < steps; ++t) {
    if (script.before_record) script.before_record(t, *world_);
    Record(&ep);
    const std::vector<double> action = script.action(t, *world_);
    const auto targets = controller_->ApplyAction(m, world_->mutable_data(), action);
    ep.actions.insert(ep.actions.end(), action.begin(), action.end());
    ep.joint_targets.insert(ep.joint_targets.end(), targets.begin(), targets.end());
    world_->Step(substeps_);
    const bool success = script.success && script.success(*world_);
    ep.rewards.push_back(success ? 1.0f : 0.0f);
    ep.dones.push_back(t == steps - 1 ? 1 : 0);
    ep.success = ep.success || success;  // as robomimic counts a rollout: the goal reached at any step
  }
  return ep;
}

std::vector<float> EpisodeRunner::Proprio() const {
  const mjData* d = world_->data();
  auto floats = [](auto&& values) { return std::vector<float>(values.begin(), values.end()); };
  const sim::SitePose ee = sim::GetSitePose(d, EeSite());
  std::vector<float> gripper;
  for (int q : gripper_qpos_) gripper.push_back(static_cast<float>(d->qpos[q]));
  return ProprioRow(proprio_layout(), floats(controller_->JointPositions(d)).data(), floats(controller_->JointVelocities(d)).data(),
                    floats(ee.pos).data(), floats(ee.quat).data(), gripper.data());
}

int EpisodeRunner::EeSite() const {
  return controller_->ee_site() >= 0 ? controller_->ee_site() : sim::RequireId(world_->model(), mjOBJ_SITE, embodiment_.ee_sites.at(0));
}

void EpisodeRunner::Record(EpisodeData* ep) {
  const mjData* d = world_->data();
  if (renderer_) {
    sim::Image image;
    for (size_t c = 0; c < draw_.cameras.size(); ++c) {  // every camera of the draw (EpisodeData::num_cameras)
      renderer_->Render(d, draw_.cameras[c], &image);
      ep->images[c].insert(ep->images[c].end(), image.rgb.begin(), image.rgb.end());
    }
    if (!eye_in_hand_.empty()) {
      renderer_->Render(d, sim::Camera::Named(eye_in_hand_), &image);
      ep->eye_in_hand_images.insert(ep->eye_in_hand_images.end(), image.rgb.begin(), image.rgb.end());
    }
  }
  if (!eye_in_hand_.empty()) {  // its pose at this frame: it moves with the hand
    const sim::Pose pose = sim::CameraPose(world_->model(), d, sim::Camera::Named(eye_in_hand_));
    ep->eye_in_hand_extrinsics.insert(ep->eye_in_hand_extrinsics.end(), pose.begin(), pose.end());
  }
  for (double q : controller_->JointPositions(d)) ep->joint_pos.push_back(static_cast<float>(q));
  for (double v : controller_->JointVelocities(d)) ep->joint_vel.push_back(static_cast<float>(v));
  const sim::SitePose ee = sim::GetSitePose(d, EeSite());
  for (double x : ee.pos) ep->eef_pos.push_back(static_cast<float>(x));
  for (double x : ee.quat) ep->eef_quat.push_back(static_cast<float>(x));
  for (int q : gripper_qpos_) ep->gripper_qpos.push_back(static_cast<float>(d->qpos[q]));
  for (int site : site_ids_) {
    for (double x : sim::GetSitePose(d, site).pos) ep->sites_pos.push_back(static_cast<float>(x));
  }
  for (int b : scene_.object_bodies) {
    for (int k = 0; k < 3; ++k) ep->object.push_back(static_cast<float>(d->xpos[3 * b + k]));
    for (int k = 0; k < 4; ++k) ep->object.push_back(static_cast<float>(d->xquat[4 * b + k]));
  }
  const size_t offset = ep->states.size();
  ep->states.resize(offset + world_->state_size());
  world_->GetState(ep->states.data() + offset);
}

}  // namespace embody::collect
