#include "adapt/plan/planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "adapt/core/error.h"
#include "adapt/plan/arm_scene.h"
#include "sim/controller.h"

namespace embody::adapt {
namespace {

namespace F = torch::nn::functional;
using Vec3 = std::array<double, 3>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Norm(const Vec3& a, const Vec3& b, int dims = 3) {
  double s = 0;
  for (int i = 0; i < dims; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

// Whether an energy name means the last imagined step only ("final") or every step ("mean").
bool FinalOnly(const std::string& energy) {
  if (energy != "final" && energy != "mean") throw AdaptError("unknown energy '" + energy + "' (final or mean)");
  return energy == "final";
}

// The previous plan shifted by one model step (the last step repeated): MPC's warm start.
torch::Tensor Shifted(const torch::Tensor& plan) {
  if (!plan.defined()) return plan;
  return torch::cat({plan.slice(0, 1), plan.slice(0, -1)}, 0);
}

std::vector<double> ToVector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Full actions for a batch of plans: (S, H, planned dims) -> (S, H, A), the rest as FullAction fills it.
torch::Tensor FullActions(const PlanScene& scene, const torch::Tensor& plans) {
  const auto fixed = torch::tensor(scene.FullAction(std::vector<double>(scene.planned_dims(), 0.0)), torch::kFloat64).to(torch::kFloat32);
  auto full = fixed.expand({plans.size(0), plans.size(1), fixed.size(0)}).clone();
  full.slice(2, 0, 3).copy_(plans.slice(2, 0, 3));
  if (plans.size(2) > 3 && full.size(2) > 6) full.select(2, 6).copy_(torch::where(plans.select(2, 3) >= 0, 1.0, -1.0));
  return full;
}

}  // namespace

CemResult Cem(const EnergyFn& energy, int dims, const CemOptions& o, const torch::Tensor& init) {
  if (o.samples < 2 || o.elites < 1 || o.elites > o.samples || o.iterations < 1 || o.horizon < 1) {
    throw AdaptError("CEM needs samples >= 2, 1 <= elites <= samples, iterations >= 1 and horizon >= 1");
  }
  torch::NoGradGuard no_grad;
  auto mean = init.defined() ? init.to(torch::kFloat32).clone() : torch::zeros({o.horizon, dims});
  auto std = torch::full({o.horizon, dims}, o.init_std);
  CemResult result;
  for (int it = 0; it < o.iterations; ++it) {
    auto samples = (mean.unsqueeze(0) + std.unsqueeze(0) * torch::randn({o.samples, o.horizon, dims})).clamp(-o.bound, o.bound);
    samples[0] = mean;  // the current plan competes with its perturbations
    const auto e = energy(samples).to(torch::kFloat32);
    const auto top = std::get<1>(e.topk(o.elites, 0, /*largest=*/false));
    const auto elites = samples.index_select(0, top);
    mean = elites.mean(0);
    std = elites.std(0, /*unbiased=*/false).clamp_min(o.min_std);
    result.elite_energy.push_back(e.index_select(0, top).mean().item<double>());
  }
  result.mean = mean;
  result.mean_energy = energy(mean.unsqueeze(0)).item<double>();
  return result;
}

PlanTask ParsePlanTask(const std::string& name) {
  if (name == "reach") return PlanTask::kReach;
  if (name == "push") return PlanTask::kPush;
  if (name == "pick") return PlanTask::kPick;
  throw AdaptError("unknown planning task '" + name + "' (reach, push or pick)");
}

std::string PlanTaskName(PlanTask task) { return task == PlanTask::kReach ? "reach" : task == PlanTask::kPush ? "push" : "pick"; }

// ---------------------------------------------------------------------------------------------------
// The scene.

PlanScene::PlanScene(const std::string& robot, const collect::RandomizationConfig& randomization, int image_size, std::uint64_t seed)
    : image_size_(image_size) {
  runner_ = MakeArmSceneRunner(robot, randomization, image_size, seed, "plan", &config_);
}

void PlanScene::Reset(std::int64_t index, PlanTask task, double camera_offset_deg) {
  // A scene where the task's goal cannot be made (an object out of the arm's reach low on the table)
  // is drawn again, as simcollect redraws an unstable episode.
  for (int draw = 0; draw < 10; ++draw) {
    if (TryReset(index, task, camera_offset_deg, draw)) return;
  }
  throw AdaptError("no " + PlanTaskName(task) + " goal found for episode " + std::to_string(index) + " in 10 scene draws");
}

bool PlanScene::TryReset(std::int64_t index, PlanTask task, double camera_offset_deg, int attempt) {
  task_ = task;
  acting_ = false;  // the goal is scripted without the latency: it is the same physical scene either way
  DrawScene(index, camera_offset_deg, attempt);
  // The goal from a stream of its own.
  collect::Rng goal_rng = collect::Rng::ForEpisode(config_.seed ^ 0x9E3779B97F4A7C15ull, index, attempt);
  goal_ = PlanGoal{};
  const bool made = task == PlanTask::kReach ? MakeReachGoal(goal_rng) : task == PlanTask::kPick ? MakePickGoal(goal_rng) : MakePushGoal(goal_rng);
  if (!made) return false;
  sim::World& world = runner_->world();
  goal_.state = world.GetState();
  goal_.views = RenderViews();
  goal_.image = goal_.views[0];
  for (PlanSubgoal& sub : goal_.subgoals) {  // every camera's image of each subgoal's state
    if (views() == 1) {
      sub.views = {sub.image};
      continue;
    }
    world.SetState(sub.state);
    sub.views = RenderViews();
  }
  Restart();
  object_rest_z_ = goal_.object >= 0 ? sim::GetBodyPos(world.data(), goal_.object)[2] : 0.0;
  return true;
}

void PlanScene::DrawScene(std::int64_t index, double camera_offset_deg, int attempt) {
  collect::Rng rng = collect::Rng::ForEpisode(config_.seed, index, attempt);
  runner_->DrawScene(1, &rng, [&](collect::Draw* draw) {
    AddCameras(runner_->randomizer(), config_.randomization, views_, collect::Rng::ForEpisode(config_.seed ^ 0x5851F42D4C957F2Dull, index, attempt),
               draw);
    ApplyPerturbation(perturbation_, runner_->randomizer(), draw);
    if (camera_offset_deg != 0) TurnCameras(draw, camera_offset_deg, /*in_place=*/false, "--camera-offset");
  });
  start_ = runner_->world().GetState();
  start_quat_ = sim::GetSitePose(runner_->world().data(), runner_->EeSite()).quat;
}

std::vector<int> PlanScene::ObjectsOfType(const std::function<bool(int)>& keep) {
  const mjModel* m = runner_->world().model();
  std::vector<int> objects;
  for (int b : runner_->scene().object_bodies) {
    if (keep(m->geom_type[m->body_geomadr[b]])) objects.push_back(b);
  }
  return objects;
}

void PlanScene::set_reach_range(double min_m, double max_m) {
  if (!(min_m >= 0 && max_m > min_m)) throw AdaptError("the reach distance range must have 0 <= min < max");
  reach_min_m_ = min_m, reach_max_m_ = max_m;
}

bool PlanScene::MakeReachGoal(collect::Rng& goal_rng) {
  // A reachable point 10-30 cm away (set_reach_range) inside the scripted reach policy's box; the arm
  // is driven there and the goal is where it got (the image shows exactly the state that is scored).
  sim::World& world = runner_->world();
  const double table = runner_->scene().table_top;
  const Vec3 ee0 = Ee();
  for (int tries = 0; tries < 50; ++tries) {
    Vec3 target = {goal_rng.Uniform(0.3, 0.65), goal_rng.Uniform(-0.3, 0.3), table + goal_rng.Uniform(0.08, 0.4)};
    const double d = Norm(target, ee0);
    if (d < reach_min_m_ || d > reach_max_m_) continue;
    world.SetState(start_);
    DriveEeTo(target, 200);
    if (Norm(Ee(), target) > 0.02 || Norm(Ee(), ee0) < reach_min_m_) continue;
    goal_.ee = Ee();
    return true;
  }
  return false;
}

bool PlanScene::MakePickGoal(collect::Rng& goal_rng) {
  // The arm picks an object with the actions a planner has (the start orientation held, the
  // gripper open or closed; simcollect's scripted pick turns the hand to a box's sides, which no
  // planner here can): above it, down around it, close, lift 18 cm or so, carry it 10+ cm, set it
  // down, open, rise off it. The goal is where object and arm ended; the subgoals are the arm above
  // the object, around it (open), lifted with it, above the place and down there (closed). Draws
  // whose grasp does not hold (a box turned against the fingers) or whose object does not stay
  // where it was set are redrawn.
  const std::vector<int> objects = ObjectsOfType([](int type) { return type != mjGEOM_SPHERE; });  // not a ball: it rolls out of the fingers
  if (objects.empty()) throw AdaptError("pick needs an object that is not a ball in the scene");
  if (embodiment().action_dim() <= 6) throw AdaptError("pick needs a gripper; " + embodiment().name + " has none");
  sim::World& world = runner_->world();
  const double table = runner_->scene().table_top;
  auto pos = [&](int body) { return sim::GetBodyPos(world.data(), body); };
  for (int tries = 0; tries < 50; ++tries) {
    world.SetState(start_);
    goal_.subgoals.clear();
    const int body = objects[goal_rng.Int(0, static_cast<int>(objects.size()) - 1)];
    const Vec3 obj = pos(body), place = {goal_rng.Uniform(0.4, 0.7), goal_rng.Uniform(-0.25, 0.25), 0};
    if (std::hypot(place[0] - obj[0], place[1] - obj[1]) < 0.1) continue;
    const double grasp_z = std::max(obj[2], table + 0.015);
    const Vec3 above = {obj[0], obj[1], table + 0.19}, at = {obj[0], obj[1], grasp_z}, up = {obj[0], obj[1], table + 0.2};
    const Vec3 over = {place[0], place[1], table + 0.2}, down = {place[0], place[1], grasp_z + 0.01};
    constexpr double kOpen = -1, kClosed = 1;
    DriveEeTo(above, 200, 1.0, true, kOpen);
    bool ok = Norm(Ee(), above) < 0.02;
    goal_.subgoals.push_back({world.GetState(), Ee(), Render(), pos(body), {}});
    DriveEeTo(at, 200, 0.6, true, kOpen);
    ok = ok && Norm(Ee(), at) < 0.02;
    goal_.subgoals.push_back({world.GetState(), Ee(), Render(), pos(body), {}});
    if (!ok) continue;
    DriveEeTo(at, 0, 0.6, true, kClosed);  // close, held there
    DriveEeTo(up, 200, 0.6, true, kClosed);
    goal_.subgoals.push_back({world.GetState(), Ee(), Render(), pos(body), {}});
    if (pos(body)[2] - obj[2] < 0.1) continue;  // the grasp did not hold
    DriveEeTo(over, 300, 0.6, true, kClosed);
    goal_.subgoals.push_back({world.GetState(), Ee(), Render(), pos(body), {}});
    DriveEeTo(down, 200, 0.5, true, kClosed);
    goal_.subgoals.push_back({world.GetState(), Ee(), Render(), pos(body), {}});
    DriveEeTo(down, 0, 0.5, true, kOpen);  // open, held there
    DriveEeTo(over, 200, 1.0, true, kOpen);
    const Vec3 placed = pos(body);
    if (std::hypot(placed[0] - obj[0], placed[1] - obj[1]) < 0.1 || std::abs(placed[2] - obj[2]) > 0.01) continue;
    goal_.object = body;
    goal_.object_pos = placed;
    goal_.ee = Ee();
    return true;
  }
  return false;
}

bool PlanScene::MakePushGoal(collect::Rng& goal_rng) {
  // The arm pushes an object 10-20 cm along the table, as the scripted push does: above
  // the point 7 cm behind it, down there, then along the line. The goal is where the object and the
  // arm ended (the image shows exactly the state that is scored); the two first poses are its
  // subgoals. Draws whose object slides off the line are redrawn.
  // A box: a ball rolls off the line, and the hand (its bottom 5 cm above the fingertips) hits the
  // top of the 10 cm cup when it comes down behind it.
  const std::vector<int> objects = ObjectsOfType([](int type) { return type == mjGEOM_BOX; });
  if (objects.empty()) throw AdaptError("push needs a box in the scene");
  sim::World& world = runner_->world();
  const double table = runner_->scene().table_top;
  for (int tries = 0; tries < 50; ++tries) {
    world.SetState(start_);
    goal_.subgoals.clear();
    const int body = objects[goal_rng.Int(0, static_cast<int>(objects.size()) - 1)];
    const double angle = goal_rng.Uniform(-M_PI, M_PI), dist = goal_rng.Uniform(0.10, 0.20);
    const Vec3 obj = sim::GetBodyPos(world.data(), body);
    const Vec3 dir = {std::cos(angle), std::sin(angle), 0};
    const Vec3 pre = {obj[0] - 0.07 * dir[0], obj[1] - 0.07 * dir[1], table + 0.02};
    const Vec3 end = {pre[0] + dist * dir[0], pre[1] + dist * dir[1], pre[2]};
    const Vec3 above = {pre[0], pre[1], table + 0.19};
    // Not toward the robot: coming down on the far side of the object, the arm reaches over it.
    if (dir[0] < -0.3 || end[0] + 0.07 * dir[0] < 0.35 || end[0] + 0.07 * dir[0] > 0.7 || std::abs(end[1] + 0.07 * dir[1]) > 0.25 || pre[0] < 0.3 ||
        pre[0] > 0.6 || end[0] > 0.6 || std::abs(pre[1]) > 0.3) {
      continue;
    }
    bool ok = true;
    for (const Vec3& waypoint : {above, pre}) {
      DriveEeTo(waypoint, 200, waypoint == above ? 1.0 : 0.6, true);
      ok = ok && Norm(Ee(), waypoint) < 0.02;
      goal_.subgoals.push_back({world.GetState(), Ee(), Render(), {}, {}});
    }
    if (!ok) continue;
    // Waypoints along the line: the states the push passes through at fractions 1/(n+1) ... n/(n+1)
    // of it (recorded on the way, so the push and its goal are the same for every n).
    const int n = push_waypoints_;
    auto record = [&] {
      const Vec3 ee = Ee();
      const double along_ee = (ee[0] - pre[0]) * dir[0] + (ee[1] - pre[1]) * dir[1];
      while (static_cast<int>(goal_.subgoals.size()) < 2 + n && along_ee >= dist * (goal_.subgoals.size() - 1) / (n + 1)) {
        goal_.subgoals.push_back({world.GetState(), ee, Render(), {}, {}});
      }
    };
    DriveEeTo(end, 300, 0.3, true, -1, n > 0 ? std::function<void()>(record) : std::function<void()>());
    while (static_cast<int>(goal_.subgoals.size()) < 2 + n) goal_.subgoals.push_back({world.GetState(), Ee(), Render(), {}, {}});
    const Vec3 moved_to = sim::GetBodyPos(world.data(), body);
    const double moved = Norm(moved_to, obj, 2), along = (moved_to[0] - obj[0]) * dir[0] + (moved_to[1] - obj[1]) * dir[1];
    if (moved < 0.08 || along < 0.9 * moved) continue;
    goal_.object = body;
    goal_.object_pos = moved_to;
    goal_.ee = Ee();
    return true;
  }
  return false;
}

void PlanScene::Restart() {
  runner_->world().SetState(start_);
  in_flight_.clear();
  transitions_.clear();
  acting_ = true;
}

void PlanScene::set_views(int n) {
  if (n < 1 || n > 16) throw AdaptError("a planning scene renders 1 to 16 cameras, not " + std::to_string(n));
  views_ = n;
}

void PlanScene::set_hand_camera(bool on) {
  if (on && embodiment().eye_in_hand_camera.empty()) {
    throw AdaptError("the model reads the camera on the hand (robot0_eye_in_hand); " + embodiment().name +
                     " has none (its descriptor's eye_in_hand_camera)");
  }
  hand_ = on;
}

sim::Camera PlanScene::CameraAt(int camera) const {
  if (hand_ && camera == views_) return sim::Camera::Named(embodiment().eye_in_hand_camera);
  if (camera < 0 || camera >= views_)
    throw AdaptError("the scene renders " + std::to_string(views()) + " cameras, not camera " + std::to_string(camera));
  return runner_->draw().cameras.at(camera);
}

std::vector<std::uint8_t> PlanScene::Render(int camera) {
  sim::Image image;
  runner_->renderer()->Render(runner_->world().data(), CameraAt(camera), &image);
  return image.rgb;
}

std::vector<std::vector<std::uint8_t>> PlanScene::RenderViews() {
  std::vector<std::vector<std::uint8_t>> views;
  for (int c = 0; c < this->views(); ++c) views.push_back(Render(c));
  return views;
}

std::vector<double> PlanScene::CameraExtrinsics() const {
  std::vector<double> all;
  const mjModel* m = runner_->world().model();
  const mjData* d = runner_->world().data();
  for (int c = 0; c < views(); ++c) {
    const auto pose = sim::CameraPose(m, d, CameraAt(c));
    if (c < views_) {
      all.insert(all.end(), pose.begin(), pose.end());
      continue;
    }
    const sim::SitePose ee = sim::GetSitePose(d, runner_->EeSite());
    const auto on_hand = PoseOnHand(std::vector<double>(pose.begin(), pose.end()), ee.pos, ee.quat);
    all.insert(all.end(), on_hand.begin(), on_hand.end());
  }
  return all;
}

void PlanScene::Act(const std::vector<double>& action) {
  sim::World& world = runner_->world();
  Transition t{runner_->Proprio(), {}, action};
  std::vector<double> applied = action;
  if (const size_t latency = acting_ ? LatencySteps(perturbation_) : 0; latency > 0) {
    in_flight_.push_back(action);
    if (in_flight_.size() > latency) {
      applied = in_flight_.front();
      in_flight_.erase(in_flight_.begin());
    } else {
      std::fill(applied.begin(), applied.begin() + std::min<size_t>(6, applied.size()), 0.0);  // still: no translation, no rotation
    }
  }
  runner_->controller().ApplyAction(world.model(), world.mutable_data(), applied);
  world.Step(runner_->substeps());
  t.next = runner_->Proprio();
  transitions_.push_back(std::move(t));
}

std::vector<double> PlanScene::FullAction(const std::vector<double>& planned) const {
  const auto& scale = embodiment().action_scale;
  std::vector<double> a(embodiment().action_dim(), 0.0);
  for (int k = 0; k < 3; ++k) a[k] = std::clamp(planned.at(k), -1.0, 1.0);
  const auto rot = sim::OrientationError(start_quat_, sim::GetSitePose(runner_->world().data(), runner_->EeSite()).quat);
  // The correction is held for a model step's control steps: a per-step gain of 0.6 (the scripted
  // policies') held for 4 steps overshoots and the hand starts to oscillate, so a quarter of it.
  for (int k = 0; k < 3; ++k) a[3 + k] = std::clamp(0.15 * rot[k] / scale.rotation, -1.0, 1.0);
  if (a.size() > 6) a[6] = task_ == PlanTask::kPick ? (planned.at(3) >= 0 ? 1.0 : -1.0) : task_ == PlanTask::kPush ? 1.0 : -1.0;
  return a;
}

void PlanScene::DriveEeTo(const Vec3& target, int max_steps, double max_speed, bool hold, double gripper, const std::function<void()>& each_step) {
  const auto& scale = embodiment().action_scale;
  auto toward = [&] {
    const Vec3 ee = Ee();
    std::vector<double> planned(planned_dims(), gripper);  // pick's fourth dim: the gripper
    for (int k = 0; k < 3; ++k) planned[k] = std::clamp(0.6 * (target[k] - ee[k]) / scale.position, -max_speed, max_speed);
    return FullAction(planned);
  };
  for (int t = 0; t < max_steps && Norm(Ee(), target) > 0.005; ++t) {
    Act(toward());
    if (each_step) each_step();
  }
  // Come to rest, so the goal image does not show a moving arm: zero actions (the arm settles where
  // its momentum takes it), or with `hold` still driven to the target (low over the table a
  // zero action lets the arm spring back up by centimetres).
  std::vector<double> still(planned_dims(), 0.0);
  if (still.size() > 3) still[3] = gripper;
  for (int t = 0; t < (hold ? 25 : 10); ++t) Act(hold ? toward() : FullAction(still));
}

std::array<double, 3> PlanScene::Ee() const { return sim::GetSitePose(runner_->world().data(), runner_->EeSite()).pos; }

double PlanScene::Distance() const {
  if (task_ == PlanTask::kReach) return Norm(Ee(), goal_.ee);
  return Norm(ObjectPos(), goal_.object_pos, task_ == PlanTask::kPick ? 3 : 2);
}

double PlanScene::DistanceTo(int index) const {
  return index < static_cast<int>(goal_.subgoals.size()) ? Norm(Ee(), goal_.subgoals.at(index).ee) : Distance();
}

double PlanScene::StateDistanceTo(int index) const {
  const double d = DistanceTo(index);
  if (task_ == PlanTask::kReach) return d;
  if (index >= static_cast<int>(goal_.subgoals.size())) return d + Norm(Ee(), goal_.ee);
  if (task_ != PlanTask::kPick) return d;
  return d + Norm(ObjectPos(), goal_.subgoals.at(index).object_pos);
}

int SubgoalAt(int step, int steps_per_subgoal, int subgoals) {
  return steps_per_subgoal > 0 ? std::min(step / steps_per_subgoal, subgoals) : subgoals;
}

std::array<double, 3> PlanScene::ObjectPos() const { return sim::GetBodyPos(runner_->world().data(), goal_.object); }

double PlanScene::ObjectLift() const { return goal_.object >= 0 ? ObjectPos()[2] - object_rest_z_ : 0.0; }

// ---------------------------------------------------------------------------------------------------
// Planners.

OnlineAdapter::OnlineAdapter(WorldModel& model, const std::string& embodiment, const OnlineAdaptOptions& options)
    : model_(model), embodiment_(embodiment), options_(options) {
  model_.RequireEmbodiment(embodiment);
  if (options.steps < 1 || options.window < 1 || !(options.lr > 0)) throw AdaptError("online adaptation needs steps >= 1, window >= 1 and lr > 0");
  if (options.parts != "all" && options.parts != "dynamics")
    throw AdaptError("online adaptation parts: all or dynamics, not '" + options.parts + "'");
  if (options.parts == "all") params_ = model_.PredictorParameters(embodiment, /*freeze_trunk=*/true);
  const Normalizer& n = model_.normalizer(embodiment);
  std0_ = n.delta_std.detach().clone();
  mean0_ = n.delta_mean.detach().clone();
  log_scale_ = torch::zeros({1}, std0_.options()).set_requires_grad(true);
  offset_ = torch::zeros_like(mean0_).set_requires_grad(true);
  params_.push_back(log_scale_);
  params_.push_back(offset_);
  torch::NoGradGuard no_grad;
  for (const auto& p : params_) trained_.push_back(p.detach().clone());
  Reset();
}

OnlineAdapter::~OnlineAdapter() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(trained_[i]);
  SetDynamicsCorrection(false);
}

void OnlineAdapter::SetDynamicsCorrection(bool keep_graph) {
  Normalizer& n = model_.normalizer(embodiment_);
  n.delta_std = std0_ * log_scale_.exp();
  n.delta_mean = mean0_ + std0_ * offset_;
  if (!keep_graph) n.delta_std = n.delta_std.detach(), n.delta_mean = n.delta_mean.detach();
}

void OnlineAdapter::Reset() {
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(trained_[i]);
  }
  SetDynamicsCorrection(false);
  optimizer_ = std::make_unique<torch::optim::SGD>(params_, torch::optim::SGDOptions(options_.lr));
}

double OnlineAdapter::Step(const torch::Tensor& latents, const torch::Tensor& proprio, const torch::Tensor& actions, const torch::Tensor& camera,
                           const torch::Tensor& dyn_proprio, const torch::Tensor& dyn_actions, const torch::Tensor& dyn_next, int context) {
  const int64_t frames = latents.size(0);
  if (frames < 2) return kNaN;
  const int64_t c = std::min<int64_t>(context, frames - 1), from = std::max<int64_t>(0, frames - 1 - options_.window);
  // Every window of c + 1 frames among the recent ones, in one batch (the last frame's actions unused).
  const auto acts = torch::cat({actions, torch::zeros({1, actions.size(1)}, actions.options())}, 0);
  std::vector<torch::Tensor> z, q, a;
  for (int64_t i = from; i + c < frames; ++i) {
    z.push_back(latents.slice(0, i, i + c + 1));
    q.push_back(proprio.slice(0, i, i + c + 1));
    a.push_back(acts.slice(0, i, i + c + 1));
  }
  const auto zb = torch::stack(z), qb = torch::stack(q), ab = torch::stack(a), cam = camera.reshape({1, -1}).expand({zb.size(0), camera.numel()});
  // The trunk and the dynamics MLP are frozen: no gradients into them.
  auto frozen = model_.TrunkParameters();
  for (const auto& p : model_.DynamicsParameters(embodiment_)) frozen.push_back(p);
  for (auto& p : frozen) p.set_requires_grad(false);
  const bool dynamics = dyn_proprio.defined() && dyn_proprio.size(0) > 0;
  if (!dynamics && options_.parts != "all") {  // nothing this window can teach the parts chosen: no loss to report
    for (auto& p : frozen) p.set_requires_grad(true);
    return kNaN;
  }
  torch::Tensor delta;  // the MLP's normalized prediction: fixed while the correction learns
  if (dynamics) {
    torch::NoGradGuard no_grad;
    delta = model_.DynamicsDelta(embodiment_, model_.normalizer(embodiment_).Normalize(dyn_proprio), dyn_actions);
  }
  double first = kNaN;
  for (int step = 0; step < options_.steps; ++step) {
    optimizer_->zero_grad();
    auto loss = torch::zeros({}, zb.options());
    if (options_.parts == "all") {
      const auto pred = model_.Predict(embodiment_, zb.slice(1, 0, c), qb.slice(1, 0, c), ab.slice(1, 0, c), cam);
      const auto target = zb.slice(1, 1, c + 1);
      loss = (pred - target).pow(2).mean() / (zb.slice(1, 0, c) - target).pow(2).mean().clamp_min(1e-12);
    }
    if (dynamics) {
      const auto change = delta * (std0_ * log_scale_.exp()) + mean0_ + std0_ * offset_;
      loss = loss + ((change - (dyn_next - dyn_proprio)) / std0_.clamp_min(1e-8)).pow(2).mean();
    }
    if (step == 0) first = loss.item<double>();
    if (!loss.requires_grad()) break;  // nothing this window can teach the parts chosen
    loss.backward();
    optimizer_->step();
    torch::NoGradGuard no_grad;
    log_scale_.clamp_(std::log(0.1), std::log(3.0));
    offset_.clamp_(-1.0, 1.0);
  }
  SetDynamicsCorrection(false);
  for (auto& p : frozen) p.set_requires_grad(true);
  return first;
}

void OnlineAdapter::WithTrained(const std::function<void()>& fn) {
  std::vector<torch::Tensor> now;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) now.push_back(params_[i].detach().clone()), params_[i].copy_(trained_[i]);
  }
  SetDynamicsCorrection(false);
  fn();
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(now[i]);
  }
  SetDynamicsCorrection(false);
}

std::vector<torch::Tensor> OnlineAdapter::DynamicsSnapshot() const { return {log_scale_.detach().clone(), offset_.detach().clone()}; }

void OnlineAdapter::WithDynamics(const std::vector<torch::Tensor>& snapshot, const std::function<void()>& fn) {
  const auto now = DynamicsSnapshot();
  {
    torch::NoGradGuard no_grad;
    log_scale_.copy_(snapshot.at(0));
    offset_.copy_(snapshot.at(1));
  }
  SetDynamicsCorrection(false);
  fn();
  {
    torch::NoGradGuard no_grad;
    log_scale_.copy_(now[0]);
    offset_.copy_(now[1]);
  }
  SetDynamicsCorrection(false);
}

LatentPlanner::LatentPlanner(WorldModel& model, FrozenEncoder& encoder, const std::string& embodiment, const CemOptions& cem,
                             const std::string& energy, int context, int subgoal_steps, const OnlineAdaptOptions& online)
    : model_(model), encoder_(encoder), embodiment_(embodiment), cem_(cem), final_only_(FinalOnly(energy)),
      context_(context > 0 ? std::min(context, model.config().context) : model.config().context), subgoal_steps_(subgoal_steps) {
  model_.RequireEmbodiment(embodiment);
  model.config().RequireNumberedCameras("plan renders");
  model_.Train(false);
  if (online.enabled) online_ = std::make_unique<OnlineAdapter>(model, embodiment, online), online_options_ = online;
}

void LatentPlanner::End() {
  if (online_) online_->Reset();  // the trained model for whoever plans next
}

void LatentPlanner::RecordErrors() {
  torch::NoGradGuard no_grad;
  const int t = static_cast<int>(latents_.size()) - 1, k = model_.config().frame_skip;
  const torch::Device dev = model_.device();
  if (t >= 1) {  // the next-frame forecast, from the model as it is before learning from frame t
    const int c = std::min(context_, t);
    auto window = [&](const std::vector<torch::Tensor>& v) {
      return torch::stack(std::vector<torch::Tensor>(v.begin() + t - c, v.begin() + t)).unsqueeze(0).to(dev);
    };
    auto error = [&] {
      const auto pred =
          model_.Predict(embodiment_, window(latents_), window(proprio_), window(actions_), camera_.to(dev)).select(1, -1)[0].to(torch::kCPU);
      return (pred - latents_[t]).abs().mean().item<double>();
    };
    const double copy = (latents_[t - 1] - latents_[t]).abs().mean().item<double>();
    errors_.latent.push_back(error());
    errors_.copy.push_back(copy);
    if (online_) {
      // The adaptation is kept while it foresees the robot better than the trained model would have, on
      // the frames it had not yet learned from (the last window's): otherwise back to the trained model.
      double trained = 0;
      online_->WithTrained([&] { trained = error(); });
      recent_.push_back({errors_.latent.back(), trained});
      if (recent_.size() > static_cast<size_t>(online_options_.window)) recent_.erase(recent_.begin());
      double adapted_sum = 0, trained_sum = 0;
      for (const auto& [a, b] : recent_) adapted_sum += a, trained_sum += b;
      if (adapted_sum > trained_sum) {
        online_->Reset();
        recent_.clear();
        ++errors_.resets;
      }
    }
  }
  const int n = steps_per_second_;
  if (t >= n) {  // the 1 s forecast of the end effector, by the dynamics model as it was n steps ago
    const EmbodimentSpec& spec = model_.spec(embodiment_);
    auto forecast = [&] {
      auto q = proprio_[t - n].unsqueeze(0).to(dev);
      for (int i = t - n; i < t; ++i) {
        const auto acts = actions_[i].reshape({k, -1}).to(dev);
        for (int j = 0; j < k; ++j) q = model_.StepDynamics(embodiment_, q, acts[j].unsqueeze(0));
      }
      const auto d = (EePositionOf(q[0], spec).to(torch::kCPU) - EePositionOf(proprio_[t], spec)).norm();
      errors_.ee_1s_cm.push_back(100 * d.item<double>());
      errors_.ee_moved_cm.push_back(100 * (EePositionOf(proprio_[t - n], spec) - EePositionOf(proprio_[t], spec)).norm().item<double>());
    };
    if (online_)
      online_->WithDynamics(dynamics_at_.at(t - n), forecast);
    else
      forecast();
  }
}

void LatentPlanner::Adapt(PlanScene& scene) {
  if (latents_.size() < 2) return;
  // The control steps of the model steps the adapter learns from (the actions as sent).
  const auto& tr = scene.transitions();
  const size_t m = std::min(tr.size(), static_cast<size_t>(model_.config().frame_skip * online_options_.window));
  std::vector<float> p, a, next;
  for (size_t i = tr.size() - m; i < tr.size(); ++i) {
    p.insert(p.end(), tr[i].proprio.begin(), tr[i].proprio.end());
    next.insert(next.end(), tr[i].next.begin(), tr[i].next.end());
    a.insert(a.end(), tr[i].action.begin(), tr[i].action.end());
  }
  const torch::Device dev = model_.device();
  const auto rows = static_cast<int64_t>(m);
  const auto dyn = [&](const std::vector<float>& v) { return rows > 0 ? torch::tensor(v).reshape({rows, -1}).to(dev) : torch::Tensor(); };
  const auto all = [&](const std::vector<torch::Tensor>& v) { return torch::stack(v).to(dev); };
  online_->Step(all(latents_), all(proprio_), all(actions_), camera_.to(dev), dyn(p), dyn(a), dyn(next), context_);
}

torch::Tensor LatentPlanner::EncodeViews(const std::vector<std::vector<std::uint8_t>>& views, int size) {
  if (static_cast<int>(views.size()) != model_.config().views()) {
    throw AdaptError("the model reads " + std::to_string(model_.config().views()) + " cameras; the scene rendered " + std::to_string(views.size()));
  }
  std::vector<torch::Tensor> z;
  for (const auto& v : views) z.push_back(EncodeFrame(v, size));
  return z.size() == 1 ? z[0] : torch::cat(z, 0);
}

torch::Tensor LatentPlanner::EncodeFrame(const std::vector<std::uint8_t>& rgb, int size) {
  auto frame = torch::from_blob(const_cast<std::uint8_t*>(rgb.data()), {1, 1, size, size, 3}, torch::kUInt8);
  const auto z = encoder_.Encode(FramesToInput(frame))[0][0];  // (N, D)
  return F::layer_norm(z, F::LayerNormFuncOptions({z.size(-1)}));
}

void LatentPlanner::Begin(PlanScene& scene) {
  targets_.clear();  // on the model's device, where the energy compares them
  for (const auto& sub : scene.goal().subgoals) targets_.push_back(EncodeViews(sub.views, scene.image_size()).to(model_.device()));
  targets_.push_back(EncodeViews(scene.goal().views, scene.image_size()).to(model_.device()));
  override_ = torch::Tensor();
  step_ = 0;
  camera_ = CameraFeatures(scene.CameraExtrinsics()).unsqueeze(0);
  latents_.clear();
  proprio_.clear();
  actions_.clear();
  warm_ = torch::Tensor();
  errors_ = ModelErrors{};
  dynamics_at_.clear();
  recent_.clear();
  steps_per_second_ = std::max(1, static_cast<int>(std::lround(scene.embodiment().control_hz / model_.config().frame_skip)));
  if (online_) online_->Reset();
}

std::vector<double> LatentPlanner::Next(PlanScene& scene, double* energy) {
  const auto t0 = std::chrono::steady_clock::now();
  const int k = model_.config().frame_skip;
  {
    torch::NoGradGuard no_grad;
    latents_.push_back(EncodeViews(scene.RenderViews(), scene.image_size()));
    const auto p = scene.runner().Proprio();
    proprio_.push_back(torch::tensor(std::vector<float>(p.begin(), p.end())));
    RecordErrors();
  }
  if (online_) {
    Adapt(scene);
    dynamics_at_.push_back(online_->DynamicsSnapshot());
  }
  torch::NoGradGuard no_grad;
  const int c = std::min<int>(context_, static_cast<int>(latents_.size()));
  const int first = static_cast<int>(latents_.size()) - c;
  // The model's inputs on its device (CEM itself runs on the CPU: its tensors are (S, H, dims)).
  const torch::Device dev = model_.device();
  const auto z = torch::stack(std::vector<torch::Tensor>(latents_.begin() + first, latents_.end())).to(dev);  // (c, N, D)
  const auto q = torch::stack(std::vector<torch::Tensor>(proprio_.begin() + first, proprio_.end())).to(dev);  // (c, P)
  // Executed actions between the context frames (c - 1 model steps of k A).
  const torch::Tensor past = first < static_cast<int>(actions_.size())
                                 ? torch::stack(std::vector<torch::Tensor>(actions_.begin() + first, actions_.end())).unsqueeze(0).to(dev)
                                 : torch::Tensor();
  const auto camera = camera_.to(dev);
  const int h = cem_.horizon;
  const int scheduled = SubgoalAt(step_++, subgoal_steps_, static_cast<int>(targets_.size()) - 1);
  const torch::Tensor& target = override_.defined() ? override_ : targets_.at(scheduled);
  auto rollout = [&](const torch::Tensor& plans) {  // (S, H, dims) on the CPU -> (S, H, N, D) on dev
    const int64_t s = plans.size(0);
    torch::Tensor acts = FullActions(scene, plans).repeat({1, 1, k}).to(dev);  // (S, H, k A): each held k control steps
    if (past.defined()) acts = torch::cat({past.expand({s, c - 1, acts.size(2)}), acts}, 1);
    return model_.Rollout(embodiment_, z.unsqueeze(0).expand({s, c, z.size(1), z.size(2)}), q.unsqueeze(0).expand({s, c, q.size(1)}), acts,
                          camera.expand({s, camera.size(1)}), h);
  };
  auto fn = [&](const torch::Tensor& plans) {
    const auto diff = (rollout(plans) - target.unsqueeze(0).unsqueeze(0)).abs().mean({2, 3});  // (S, H)
    return (final_only_ ? diff.select(1, h - 1) : diff.mean(1)).to(torch::kCPU);
  };
  const CemResult r = Cem(fn, scene.planned_dims(), cem_, Shifted(warm_));
  warm_ = r.mean;
  if (energy) *energy = r.mean_energy;
  imagined_ = rollout(r.mean.unsqueeze(0))[0].to(torch::kCPU);  // the chosen plan's imagination, for replays (no random draws)
  const auto action = ToVector(r.mean[0]);
  const auto full = torch::tensor(scene.FullAction(action), torch::kFloat64).to(torch::kFloat32);
  actions_.push_back(full.repeat({k}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  imagined_steps_per_s_ = static_cast<double>(cem_.samples) * cem_.iterations * h / std::max(seconds, 1e-9);
  return action;
}

void LatentPlanner::set_last_action(const torch::Tensor& actions) {
  if (actions_.empty()) throw AdaptError("set_last_action before any model step");
  if (actions.numel() != actions_.back().numel()) {
    throw AdaptError("set_last_action: " + std::to_string(actions.numel()) + " numbers for a model step of " +
                     std::to_string(actions_.back().numel()));
  }
  actions_.back() = actions.reshape(actions_.back().sizes()).to(torch::kCPU, torch::kFloat32);
}

bool SubgoalOnTheWay(const std::vector<double>& imagined_to_goal, double now_to_goal) {
  const auto best = std::min_element(imagined_to_goal.begin(), imagined_to_goal.end());
  return best != imagined_to_goal.end() && best != imagined_to_goal.begin() && *best < now_to_goal;
}

namespace {
// The slow model's step as a whole number of the fast model's (the slow LatentPlanner, made first,
// has already refused a model without the embodiment).
int FastStepsPerSlowStep(const WorldModel& fast, const WorldModel& slow) {
  const int k = fast.config().frame_skip, big = slow.config().frame_skip;
  if (big <= k || big % k != 0) {
    throw AdaptError("the slow model's step (" + std::to_string(big) + " control steps) must be a multiple of the fast model's (" +
                     std::to_string(k) + ") and longer");
  }
  if (slow.config().cameras != fast.config().cameras) throw AdaptError("the slow model reads other cameras than the fast one");
  return big / k;
}
}  // namespace

HierarchicalPlanner::HierarchicalPlanner(WorldModel& fast, WorldModel& slow, FrozenEncoder& encoder, const std::string& embodiment,
                                         const CemOptions& cem, const std::string& energy, int context, const HierarchyOptions& hierarchy)
    : fast_(fast, encoder, embodiment, cem, energy, context), slow_(
                                                                  slow, encoder, embodiment,
                                                                  [&] {
                                                                    CemOptions c = cem;
                                                                    c.horizon = hierarchy.horizon;
                                                                    return c;
                                                                  }(),
                                                                  hierarchy.energy, 0),
      every_(FastStepsPerSlowStep(fast, slow)), k_(fast.config().frame_skip), device_(fast.device()) {}

void HierarchicalPlanner::Begin(PlanScene& scene) {
  fast_.Begin(scene);
  slow_.Begin(scene);
  step_ = 0;
  subgoal_ = torch::Tensor();
  subgoals_.clear();
  executed_.clear();
  slow_energy_.clear();
  used_.clear();
  goal_l1_.clear();
}

void HierarchicalPlanner::End() {
  fast_.End();
  slow_.End();
}

std::vector<double> HierarchicalPlanner::Next(PlanScene& scene, double* energy) {
  if (step_ % every_ == 0) {
    // The slow level learns what the fast one did over its last step (its history: the actions sent).
    if (!executed_.empty()) slow_.set_last_action(torch::cat(executed_));
    executed_.clear();
    double e = kNaN;
    slow_.Next(scene, &e);
    slow_energy_.push_back(e);
    // The first slow step's imagined latents: where to be one slow step from now, if that is on the
    // way (nearer the goal than now, not yet the arrival); else the goal itself.
    const auto imagined = slow_.imagined();  // (H, N, D), CPU
    const auto goal = slow_.goal_latent().to(torch::kCPU);
    const auto d = ToVector((imagined - goal.unsqueeze(0)).abs().mean(std::vector<int64_t>{1, 2}));  // per slow step
    const double now = (slow_.last_latent() - goal).abs().mean().item<double>();
    const bool on_the_way = SubgoalOnTheWay(d, now);
    subgoal_ = on_the_way ? imagined[0].to(device_) : torch::Tensor();
    used_.push_back(on_the_way);
    std::vector<double> row = {now};
    row.insert(row.end(), d.begin(), d.end());
    goal_l1_.push_back(row);
  }
  ++step_;
  fast_.set_target(subgoal_);
  subgoals_.push_back((subgoal_.defined() ? subgoal_ : fast_.goal_latent()).to(torch::kCPU));
  const auto action = fast_.Next(scene, energy);
  // As RunMpc sends it (the rotation correction from the same state), held the fast step's k control steps.
  const auto full = torch::tensor(scene.FullAction(action), torch::kFloat64).to(torch::kFloat32);
  executed_.push_back(full.repeat({k_}));
  return action;
}

DynamicsPlanner::DynamicsPlanner(WorldModel& model, const std::string& embodiment, const CemOptions& cem, const std::string& energy)
    : model_(model), embodiment_(embodiment), cem_(cem), final_only_(FinalOnly(energy)) {
  if (!model_.Has(embodiment)) throw AdaptError("the world model has no dynamics model for " + embodiment);
  model_.Train(false);
}

void DynamicsPlanner::Begin(PlanScene& scene) {
  if (scene.task() != PlanTask::kReach) throw AdaptError("the dynamics oracle plans reach only (it does not model objects)");
  warm_ = torch::Tensor();
}

std::vector<double> DynamicsPlanner::Next(PlanScene& scene, double* energy) {
  torch::NoGradGuard no_grad;
  const int k = model_.config().frame_skip;
  const EmbodimentSpec& spec = model_.spec(embodiment_);
  const auto p = scene.runner().Proprio();
  const torch::Device dev = model_.device();
  const auto p0 = torch::tensor(std::vector<float>(p.begin(), p.end())).to(dev);
  const auto goal = torch::tensor({scene.goal().ee[0], scene.goal().ee[1], scene.goal().ee[2]}, torch::kFloat32).to(dev);
  auto fn = [&](const torch::Tensor& plans) {
    const auto acts = FullActions(scene, plans).to(dev);  // (S, H, A)
    auto q = p0.unsqueeze(0).expand({plans.size(0), p0.size(0)}).contiguous();
    torch::Tensor sum = torch::zeros({plans.size(0)}, q.options());
    for (int step = 0; step < plans.size(1); ++step) {
      for (int i = 0; i < k; ++i) q = model_.StepDynamics(embodiment_, q, acts.select(1, step));
      const auto d = (EePositionOf(q, spec) - goal).norm(2, 1);
      sum = final_only_ ? d : sum + d / static_cast<double>(plans.size(1));
    }
    return sum.to(torch::kCPU);
  };
  const CemResult r = Cem(fn, scene.planned_dims(), cem_, Shifted(warm_));
  warm_ = r.mean;
  if (energy) *energy = r.mean_energy;
  return ToVector(r.mean[0]);
}

SimPlanner::SimPlanner(const CemOptions& cem, int frame_skip, const std::string& energy, int subgoal_steps)
    : cem_(cem), frame_skip_(frame_skip), subgoal_steps_(subgoal_steps), final_only_(FinalOnly(energy)) {}

void SimPlanner::Begin(PlanScene&) {
  warm_ = torch::Tensor();
  step_ = 0;
}

std::vector<double> SimPlanner::Next(PlanScene& scene, double* energy) {
  const int k = frame_skip_;
  sim::World& world = scene.runner().world();
  const auto now = world.GetState();
  const int target = SubgoalAt(step_++, subgoal_steps_, static_cast<int>(scene.goal().subgoals.size()));
  auto fn = [&](const torch::Tensor& plans) {
    std::vector<float> e(plans.size(0));
    const auto acc = plans.to(torch::kFloat64).contiguous();
    for (int64_t s = 0; s < plans.size(0); ++s) {
      world.SetState(now);
      try {
        double sum = 0;
        for (int step = 0; step < plans.size(1); ++step) {
          const double* a = acc.data_ptr<double>() + (s * plans.size(1) + step) * plans.size(2);
          const auto full = scene.FullAction(std::vector<double>(a, a + plans.size(2)));
          for (int i = 0; i < k; ++i) scene.Act(full);
          sum += scene.StateDistanceTo(target);
        }
        e[s] = static_cast<float>(final_only_ ? scene.StateDistanceTo(target) : sum / static_cast<double>(plans.size(1)));
      } catch (const sim::UnstableError&) {
        e[s] = 1e3f;  // a sample that breaks the simulation is the worst plan
      }
    }
    return torch::tensor(e);
  };
  const CemResult r = Cem(fn, scene.planned_dims(), cem_, Shifted(warm_));
  world.SetState(now);
  warm_ = r.mean;
  if (energy) *energy = r.mean_energy;
  return ToVector(r.mean[0]);
}

std::vector<double> RandomPlanner::Next(PlanScene& scene, double* energy) {
  if (energy) *energy = kNaN;
  return ToVector(torch::rand({scene.planned_dims()}) * 2 - 1);
}

std::vector<double> StillPlanner::Next(PlanScene& scene, double* energy) {
  if (energy) *energy = kNaN;
  return std::vector<double>(scene.planned_dims(), 0.0);
}

MpcResult RunMpc(PlanScene& scene, Planner& planner, const MpcOptions& options, MpcTrace* trace) {
  scene.Restart();
  planner.Begin(scene);
  MpcResult r;
  if (trace) *trace = MpcTrace{};
  const bool pick = scene.task() == PlanTask::kPick;
  auto reached = [&](double d) { return d < options.success_m && (!pick || r.max_lift_m >= options.lift_m); };
  for (int step = 0; step < options.max_steps; ++step) {
    const double d = scene.Distance();
    r.distance_m.push_back(d);
    if (trace) trace->frames.push_back(scene.Render());
    if (reached(d)) {
      r.success = true;
      if (options.stop_at_success) break;
    }
    double energy = kNaN;
    const auto t0 = std::chrono::steady_clock::now();
    const auto planned = planner.Next(scene, &energy);
    r.plan_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.energy.push_back(energy);
    if (trace) trace->imagined.push_back(planner.imagined());
    // The rotation correction is recomputed from the same state the planner saw: FullAction before acting.
    const auto action = scene.FullAction(planned);
    for (int i = 0; i < options.frame_skip; ++i) {
      scene.Act(action);
      if (pick) r.max_lift_m = std::max(r.max_lift_m, scene.ObjectLift());
    }
    ++r.steps;
  }
  r.final_distance_m = scene.Distance();
  if (r.distance_m.size() == static_cast<size_t>(r.steps)) {
    r.distance_m.push_back(r.final_distance_m);
    if (trace) trace->frames.push_back(scene.Render());
  }
  r.success = r.success || reached(r.final_distance_m);
  r.errors = planner.errors();
  planner.End();
  return r;
}

}  // namespace embody::adapt

namespace embody::adapt {
namespace {

nlohmann::json Summarize(const std::vector<MpcResult>& runs) {
  double successes = 0, final_cm = 0, steps = 0, seconds = 0;
  for (const auto& r : runs) {
    successes += r.success;
    final_cm += 100 * r.final_distance_m;
    steps += r.steps;
    seconds += r.plan_seconds;
  }
  const double n = std::max<double>(1, runs.size());
  return {{"success_rate", successes / n},
          {"final_distance_cm", final_cm / n},
          {"mean_steps", steps / n},
          {"seconds_per_action", steps > 0 ? seconds / steps : 0.0}};
}

nlohmann::json Detail(const MpcResult& r) {
  nlohmann::json energy = nlohmann::json::array();
  for (double e : r.energy) energy.push_back(std::isnan(e) ? nlohmann::json(nullptr) : nlohmann::json(e));
  std::vector<double> cm;
  for (double d : r.distance_m) cm.push_back(100 * d);
  nlohmann::json d = {
      {"success", r.success}, {"steps", r.steps}, {"final_distance_cm", 100 * r.final_distance_m}, {"max_lift_cm", 100 * r.max_lift_m},
      {"distance_cm", cm},    {"energy", energy}};
  if (!r.errors.latent.empty()) d["latent_error"] = r.errors.latent, d["copy_error"] = r.errors.copy;
  if (r.errors.resets > 0) d["online_resets"] = r.errors.resets;
  if (!r.errors.ee_1s_cm.empty()) d["ee_error_1s_cm"] = r.errors.ee_1s_cm, d["ee_moved_1s_cm"] = r.errors.ee_moved_cm;
  return d;
}

// The model's errors over a set of runs: the next-frame latent error over copy-last's (summed over the
// steps), and the 1 s
// end-effector forecast's error (cm), over every model step and over those made after 5 s of acting.
nlohmann::json SummarizeErrors(const std::vector<MpcResult>& runs, int steps_per_second) {
  double latent = 0, copy = 0, ee = 0, late = 0, moving = 0;
  int nl = 0, ne = 0, nlate = 0, nmoving = 0;
  for (const auto& r : runs) {
    for (size_t i = 0; i < r.errors.latent.size(); ++i) latent += r.errors.latent[i], copy += r.errors.copy[i], ++nl;
    for (size_t i = 0; i < r.errors.ee_1s_cm.size(); ++i) {
      ee += r.errors.ee_1s_cm[i], ++ne;
      // ee_1s_cm[i] is the forecast made at model step i (judged at i + n): after 5 s of acting from i >= 5 n.
      if (static_cast<int>(i) >= 5 * steps_per_second) late += r.errors.ee_1s_cm[i], ++nlate;
      if (r.errors.ee_moved_cm[i] >= 5) moving += r.errors.ee_1s_cm[i], ++nmoving;  // the arm moved 5+ cm in that second
    }
  }
  const auto mean = [](double sum, int n) { return n > 0 ? nlohmann::json(sum / n) : nlohmann::json(nullptr); };
  return {{"latent_over_copy",
           nl > 0 && copy > 0 ? nlohmann::json(latent / copy) : nlohmann::json(nullptr)},  // ratio of sums: steps where the arm rests do not dominate
          {"ee_1s_cm", mean(ee, ne)},
          {"ee_1s_cm_after_5s", mean(late, nlate)},
          {"ee_1s_cm_moving", mean(moving, nmoving)},
          {"forecasts_moving", nmoving},
          {"forecasts", ne},
          {"forecasts_after_5s", nlate}};
}

}  // namespace

namespace {

// One `plan` run: its scene, its planners and what each ran, episode by episode.
class PlanRun {
 public:
  PlanRun(WorldModel& model, FrozenEncoder& encoder, const PlanRunOptions& o, WorldModel* slow)
      : o_(o), model_(model),
        latent_(model, encoder, o.embodiment, o.cem, o.energy, o.context, o.subgoal_steps, o.online),  // refuses a model of another robot
        scene_(o.robot.empty() ? o.embodiment : o.robot, o.randomization, encoder.image_size(), o.seed) {
    mpc_ = o.mpc;
    mpc_.frame_skip = model.config().frame_skip;
    scene_.set_push_waypoints(o.push_waypoints);
    scene_.set_reach_range(o.reach_cm[0] / 100, o.reach_cm[1] / 100);
    scene_.set_views(model.config().agent_views());
    scene_.set_hand_camera(model.config().reads_hand());
    scene_.set_perturbation(o.perturbation);
    // The comparisons of a perturbed or adapted run: the same planner on the nominal robot, and without adaptation.
    if (o.perturbation.active() || o.online.enabled)
      frozen_ = std::make_unique<LatentPlanner>(model, encoder, o.embodiment, o.cem, o.energy, o.context, o.subgoal_steps);
    if (o.hierarchy.enabled) {
      if (!slow) throw AdaptError("a hierarchical plan needs the slow model");
      if (o.subgoal_steps > 0 && o.task != PlanTask::kReach)
        throw AdaptError("the hierarchy plans from the final goal image alone: --subgoal-steps must be 0 with --hierarchy");
      if (o.online.enabled || o.perturbation.active())
        throw AdaptError("--hierarchy does not combine with --online-adapt or --perturb yet (they compare flat planners)");
      hierarchy_ = std::make_unique<HierarchicalPlanner>(model, *slow, encoder, o.embodiment, o.cem, o.energy, o.context, o.hierarchy);
    } else if (slow) {
      throw AdaptError("a slow model was given without the hierarchy");
    }
    slow_frame_skip_ = slow ? slow->config().frame_skip : 0;
    steps_per_second_ = std::max(1, static_cast<int>(std::lround(scene_.embodiment().control_hz / mpc_.frame_skip)));
    const EmbodimentSpec& spec = model.spec(o.embodiment);
    if (spec.action_dim != scene_.embodiment().action_dim()) {
      throw AdaptError("the model's " + o.embodiment + " takes " + std::to_string(spec.action_dim) + " action dims; the robot has " +
                       std::to_string(scene_.embodiment().action_dim()));
    }
    oracle_kind_ = o.oracle == "auto" ? (o.task == PlanTask::kReach ? "dynamics" : "sim") : o.oracle;  // objects: sim
    if (oracle_kind_ == "dynamics" && o.task != PlanTask::kReach) throw AdaptError("--oracle dynamics plans reach only (use sim)");
    if (oracle_kind_ == "dynamics")
      oracle_ = std::make_unique<DynamicsPlanner>(model, o.embodiment, o.cem, o.energy);
    else if (oracle_kind_ == "sim")
      oracle_ = std::make_unique<SimPlanner>(o.oracle_cem, mpc_.frame_skip, o.energy, o.subgoal_steps);
    else if (oracle_kind_ != "none")
      throw AdaptError("unknown --oracle '" + o.oracle + "' (dynamics, sim, none or auto)");
    offsets_ = o.camera_offsets;
    if (std::find(offsets_.begin(), offsets_.end(), 0.0) == offsets_.end()) offsets_.insert(offsets_.begin(), 0.0);
  }

  // Every run of episode e (the model planner per camera offset, then the others at offset 0): its detail.
  nlohmann::json Episode(int e, std::vector<PlanTrace>* traces) {
    nlohmann::json detail;
    for (double offset : offsets_) {
      scene_.Reset(e, o_.task, offset);
      const std::array<double, 3> start_ee = scene_.Ee();
      torch::manual_seed(Seed(e));
      const bool traced = traces && offset == 0 && e < o_.replay_episodes;
      MpcTrace trace;
      const MpcResult r = RunMpc(scene_, main(), mpc_, traced ? &trace : nullptr);
      if (traced) traces->push_back({e, r, std::move(trace), scene_.goal().image, TargetImages(r.steps), {}, {}});
      if (traced && hierarchy_) traces->back().subgoal_latents = hierarchy_->subgoals();
      by_offset_[offset].push_back(r);
      if (r.steps > 0) imagined_per_s_ += hierarchy_ ? hierarchy_->imagined_steps_per_s() : latent_.imagined_steps_per_s(), ++imagined_n_;
      const std::string key = offset == 0 ? std::string("model") : "model_offset_" + std::to_string(static_cast<int>(std::lround(offset)));
      detail[key] = Detail(r);
      if (hierarchy_) {
        detail[key]["slow_energy"] = hierarchy_->slow_energy();
        detail[key]["used_subgoal"] = hierarchy_->used_subgoal();
        detail[key]["slow_goal_l1"] = hierarchy_->goal_l1();
        if (offset == 0) slow_errors_.push_back(hierarchy_->slow_errors());
      }
      if (offset != 0) continue;
      detail["episode"] = e;
      detail["start_distance_cm"] = 100 * r.distance_m.front();
      detail["start_ee"] = start_ee;  // m, world frame: where the arm started and where the goal image has it
      detail["goal_ee"] = scene_.goal().ee;
      Others(e, traced ? &traces->back() : nullptr, &detail);
    }
    return detail;
  }

  // One line per episode for the log.
  std::string LogLine(int e, const nlohmann::json& detail) const {
    char line[256];
    const auto& m = detail["model"];
    std::snprintf(
        line, sizeof line, "episode %d: start %.1f cm -> model %.1f cm (%s, %d steps)%s", e, detail["start_distance_cm"].get<double>(),
        m["final_distance_cm"].get<double>(), m["success"].get<bool>() ? "success" : "miss", m["steps"].get<int>(),
        oracle_ ? (", oracle " + std::to_string(static_cast<int>(std::lround(detail["oracle"]["final_distance_cm"].get<double>()))) + " cm").c_str()
                : "");
    return line;
  }

  nlohmann::json Results(const nlohmann::json& episodes) {
    nlohmann::json out = Summarize(by_offset_[0.0]);
    out["embodiment"] = o_.embodiment;
    out["task"] = PlanTaskName(o_.task);
    out["episodes"] = o_.episodes;
    out["seed"] = o_.seed;
    out["randomization"] = o_.randomization.ToJson();
    out["energy"] = o_.energy;
    out["cameras"] = model_.config().cameras;
    out["push_waypoints"] = o_.push_waypoints;
    if (o_.task == PlanTask::kReach) out["reach_cm"] = o_.reach_cm;
    out["subgoal_steps"] = o_.subgoal_steps;  // model steps per subgoal (push has 2 + push_waypoints subgoals, pick 5, reach none)
    out["cem"] = o_.cem;
    out["frame_skip"] = mpc_.frame_skip;
    out["max_steps"] = mpc_.max_steps;
    out["success_cm"] = 100 * mpc_.success_m;
    out["stop_at_success"] = mpc_.stop_at_success;
    out["imagined_steps_per_s"] = imagined_n_ > 0 ? imagined_per_s_ / imagined_n_ : 0.0;
    out["perturbation"] = o_.perturbation.ToJson();
    out["online_adapt"] = o_.online.enabled;
    if (o_.online.enabled) out["online"] = o_.online;
    out["model_error"] = SummarizeErrors(by_offset_[0.0], steps_per_second_);
    if (o_.baselines) out["baselines"] = {{"random", Summarize(random_runs_)}, {"still", Summarize(still_runs_)}};
    auto comparison = [&](const char* name, const std::vector<MpcResult>& runs) {
      if (runs.empty()) return;
      out["baselines"][name] = Summarize(runs);
      out["baselines"][name]["model_error"] = SummarizeErrors(runs, steps_per_second_);
    };
    comparison("nominal", nominal_runs_);  // the model planner on the unperturbed robot (same episodes)
    comparison("frozen", frozen_runs_);    // the model planner without online adaptation (same robot)
    comparison("flat", flat_runs_);        // hierarchy: the latent planner alone (fast level), same goal image
    out["goal_images"] = o_.task != PlanTask::kReach && o_.subgoal_steps > 0 ? "subgoals" : "final";
    if (hierarchy_) {
      // The slow model's own next-step forecasts over the episodes (each slow step the robot made).
      std::vector<MpcResult> slow(slow_errors_.size());
      for (size_t i = 0; i < slow.size(); ++i) slow[i].errors = slow_errors_[i];
      out["hierarchy"] = {
          {"levels", 2},
          {"slow_frame_skip", slow_frame_skip_},
          {"fast_steps_per_slow_step", hierarchy_->replan_every()},
          {"slow_horizon", o_.hierarchy.horizon},
          {"slow_energy", o_.hierarchy.energy},
          {"slow_model_error", SummarizeErrors(slow, std::max(1, static_cast<int>(std::lround(scene_.embodiment().control_hz / slow_frame_skip_))))}};
    }
    if (oracle_) {
      out["oracle"] = Summarize(oracle_runs_);
      out["oracle"]["kind"] = oracle_kind_;
    }
    out["by_camera_offset"] = nlohmann::json::object();
    for (const auto& [offset, runs] : by_offset_) {
      char key[32];
      std::snprintf(key, sizeof key, "%g", offset);
      out["by_camera_offset"][key] = Summarize(runs)["success_rate"];
    }
    out["per_episode"] = episodes;
    return out;
  }

 private:
  std::uint64_t Seed(int e) const { return o_.seed * 1000003ull + static_cast<std::uint64_t>(e); }

  // What each executed step aimed at: kept only when that was not always the goal.
  std::vector<std::uint8_t> TargetImages(int steps) const {
    std::vector<std::uint8_t> targets;
    const auto& subgoals = scene_.goal().subgoals;
    for (int t = 0; t < steps && o_.subgoal_steps > 0 && !subgoals.empty(); ++t) {
      const int i = SubgoalAt(t, o_.subgoal_steps, static_cast<int>(subgoals.size()));
      const auto& image = i < static_cast<int>(subgoals.size()) ? subgoals[i].image : scene_.goal().image;
      targets.insert(targets.end(), image.begin(), image.end());
    }
    return targets;
  }

  // The other planners on episode e (offset 0): not adapted, the baselines, the oracle, the nominal robot.
  void Others(int e, PlanTrace* trace, nlohmann::json* detail) {
    if (hierarchy_) {  // the fast level alone toward the same final goal image
      torch::manual_seed(Seed(e));
      flat_runs_.push_back(RunMpc(scene_, latent_, mpc_));
      (*detail)["flat"] = Detail(flat_runs_.back());
    }
    if (o_.online.enabled) {  // perturbed (or nominal), not adapted
      torch::manual_seed(Seed(e));
      frozen_runs_.push_back(RunMpc(scene_, *frozen_, mpc_));
      (*detail)["frozen"] = Detail(frozen_runs_.back());
      if (trace) trace->frozen_errors = frozen_runs_.back().errors;
    }
    if (o_.baselines) {
      torch::manual_seed(Seed(e) + 7);
      random_runs_.push_back(RunMpc(scene_, random_, mpc_));
      still_runs_.push_back(RunMpc(scene_, still_, mpc_));
      (*detail)["random"] = Detail(random_runs_.back());
      (*detail)["still"] = Detail(still_runs_.back());
    }
    if (oracle_) {
      torch::manual_seed(Seed(e) + 11);
      oracle_runs_.push_back(RunMpc(scene_, *oracle_, mpc_));
      (*detail)["oracle"] = Detail(oracle_runs_.back());
    }
    if (o_.perturbation.active()) {  // the same episode on the robot the model learned
      scene_.set_perturbation({});
      scene_.Reset(e, o_.task, 0);
      torch::manual_seed(Seed(e));
      nominal_runs_.push_back(RunMpc(scene_, *frozen_, mpc_));
      (*detail)["nominal"] = Detail(nominal_runs_.back());
      scene_.set_perturbation(o_.perturbation);
    }
  }

  const PlanRunOptions& o_;
  WorldModel& model_;
  MpcOptions mpc_;
  LatentPlanner latent_;
  PlanScene scene_;
  std::unique_ptr<LatentPlanner> frozen_;
  std::unique_ptr<HierarchicalPlanner> hierarchy_;
  int slow_frame_skip_ = 0;
  std::vector<ModelErrors> slow_errors_;
  Planner& main() { return hierarchy_ ? static_cast<Planner&>(*hierarchy_) : latent_; }
  std::unique_ptr<Planner> oracle_;
  std::string oracle_kind_;
  RandomPlanner random_;
  StillPlanner still_;
  std::vector<double> offsets_;
  int steps_per_second_ = 5;
  std::map<double, std::vector<MpcResult>> by_offset_;
  std::vector<MpcResult> random_runs_, still_runs_, oracle_runs_, nominal_runs_, frozen_runs_, flat_runs_;
  double imagined_per_s_ = 0;
  int imagined_n_ = 0;
};

}  // namespace

nlohmann::json RunPlanning(WorldModel& model, const std::string& model_encoder_hash, FrozenEncoder& encoder, const PlanRunOptions& o,
                           const std::function<void(const std::string&)>& log, std::vector<PlanTrace>* traces, WorldModel* slow) {
  if (o.episodes < 1) throw AdaptError("--episodes must be at least 1");
  encoder.RequireHash(model_encoder_hash);
  PlanRun run(model, encoder, o, slow);
  nlohmann::json episodes = nlohmann::json::array();
  for (int e = 0; e < o.episodes; ++e) {
    episodes.push_back(run.Episode(e, traces));
    if (log) log(run.LogLine(e, episodes.back()));
  }
  return run.Results(episodes);
}

}  // namespace embody::adapt
