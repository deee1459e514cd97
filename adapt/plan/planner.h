// Goal-image planning in latent space (`plan`): model-predictive control with the cross-entropy
// method (CEM) over the world model's imagined latents, closed loop in MuJoCo (V-JEPA 2-AC's
// evaluation, scaled to a CPU).
//
// An episode: a scene drawn as simcollect draws one (its own seed, so held out from the training
// data), a goal rendered from the same scene and camera (reach: the arm driven to an end-effector
// position 10-30 cm away; push: an object moved 10-20 cm on the table; pick: an object grasped, carried
// and placed 10+ cm away by the scripted pick policy, the arm lifted off it), the goal's state kept only to
// score success. At every model step a Planner chooses one normalized action, which is held for the
// model step's k control steps; the loop stops at success or after the step budget.
//
// Planners: LatentPlanner (CEM on the world model: encode the frame, imagine `horizon` model steps
// for every sample in one batch, energy = L1 between the imagined and the goal latent), and for
// comparison DynamicsPlanner (the same CEM on the learned dynamics model toward the goal's true ee
// position: what a perfect latent model could reach), SimPlanner (the same CEM with MuJoCo itself as
// the model), RandomPlanner and StillPlanner.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "adapt/encoder/encoder.h"
#include "adapt/plan/perturbation.h"
#include "adapt/world_model/world_model.h"
#include "collect/episode.h"

namespace embody::adapt {

struct CemOptions {
  int samples = 256;
  int iterations = 4;
  int elites = 32;
  int horizon = 3;        ///< model steps planned ahead
  double init_std = 0.6;  ///< initial spread, in normalized action units
  double min_std = 0.05;
  double bound = 1.0;  ///< samples are clipped to [-bound, bound]
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CemOptions, samples, iterations, elites, horizon, init_std, min_std, bound)

/// Energies of a batch of action sequences: (S, H, dims) -> (S).
using EnergyFn = std::function<torch::Tensor(const torch::Tensor& plans)>;

struct CemResult {
  torch::Tensor mean;                ///< (H, dims): the final distribution's mean, the plan executed
  double mean_energy = 0;            ///< the energy of that mean
  std::vector<double> elite_energy;  ///< mean energy of the elites, per iteration
};
/// Minimizes `energy` over sequences (H, dims): samples around `init` (zeros when undefined), keeps
/// the elites, refits mean and spread, `iterations` times; the current mean is always one of the
/// samples. Random draws come from torch's generator (seed it for determinism).
CemResult Cem(const EnergyFn& energy, int dims, const CemOptions& options, const torch::Tensor& init = {});

enum class PlanTask { kReach, kPush, kPick };
/// "reach" | "push" | "pick". @throws AdaptError naming the bad value.
PlanTask ParsePlanTask(const std::string& name);
std::string PlanTaskName(PlanTask task);

/// An intermediate goal on the way (V-JEPA 2-AC gives sub-goal images for multi-stage tasks): the
/// state, its end-effector position and camera 0's image of it.
struct PlanSubgoal {
  std::vector<double> state;
  std::array<double, 3> ee{};
  std::vector<std::uint8_t> image;
  std::array<double, 3> object_pos{};            ///< pick: where the goal's object is in it (m)
  std::vector<std::vector<std::uint8_t>> views;  ///< every camera's image of it (PlanScene::views(); views[0] is `image`)
};

/// What the planner must reach. Only the images are shown to the latent planner.
struct PlanGoal {
  std::vector<double> state;                     ///< the goal scene's full MuJoCo state (re-rendering, tests)
  std::array<double, 3> ee{};                    ///< the goal's end-effector position (m; what reach scores)
  int object = -1;                               ///< push, pick: the object's body id
  std::array<double, 3> object_pos{};            ///< push, pick: its goal position (m)
  std::vector<std::uint8_t> image;               ///< the goal frame of camera 0, S*S*3 RGB
  std::vector<std::vector<std::uint8_t>> views;  ///< every camera's goal frame (PlanScene::views(); views[0] is `image`)
  /// push, pick: the states the scripted task passed through before the goal (push: the arm above
  /// the point behind the object, then down at it, then any waypoints along the push line, see
  /// PlanScene::set_push_waypoints; pick: above the object, around it, lifted with it, over the
  /// place, set down there); planners given a subgoal schedule aim at these first.
  std::vector<PlanSubgoal> subgoals;
};

/// Which goal a planner aims at in model step `step`: subgoal i for steps [i n, (i + 1) n), then the
/// goal (index = subgoals); n = 0 means the goal throughout.
int SubgoalAt(int step, int steps_per_subgoal, int subgoals);

/// A planning scene: one arm, episodes drawn like simcollect's, and their goals.
class PlanScene {
 public:
  /// @throws AdaptError for an embodiment that is not an arm; CollectError/SimError from the scene.
  PlanScene(const std::string& robot, const collect::RandomizationConfig& randomization, int image_size, std::uint64_t seed);

  /// Draws episode `index` (scene and goal; every camera's azimuth turned by `camera_offset_deg` about
  /// its target) and puts the world in the start state. Deterministic in (seed, index, task, offset). A
  /// scene where the goal cannot be made is drawn again (up to 10 draws; then AdaptError).
  void Reset(std::int64_t index, PlanTask task, double camera_offset_deg = 0);
  /// Cameras rendered (camera0 .. camera<n-1>, as simcollect --cameras n places them), for a world
  /// model that reads several views; 1 by default. The scene itself (objects, lights, materials,
  /// camera 0) is the same for every n: further cameras are drawn from a stream of their own.
  void set_views(int n);
  /// Also renders the camera on the hand (the embodiment's eye_in_hand_camera, robomimic's
  /// robot0_eye_in_hand) after the agent views, for a model that reads it. @throws AdaptError for a
  /// robot with no camera on its hand.
  void set_hand_camera(bool on);
  /// Cameras rendered: the agent views, and the hand's when set.
  int views() const { return views_ + (hand_ ? 1 : 0); }
  /// push: subgoals along the push line besides the two before it (the states the scripted push
  /// passes through at 1/(n+1) ... n/(n+1) of the line; the goal itself is the same for every n).
  void set_push_waypoints(int n) { push_waypoints_ = n; }
  /// reach: how far the goal's end effector is from the start's (m; 0.10-0.30 by default).
  /// @throws AdaptError unless 0 <= min < max.
  void set_reach_range(double min_m, double max_m);
  /// The robot (or camera) changed as `p` says from the next Reset on (adapt/plan/perturbation.h);
  /// an inactive one is the nominal scene. The scene's draw is otherwise the same.
  void set_perturbation(const Perturbation& p) { perturbation_ = p; }
  const Perturbation& perturbation() const { return perturbation_; }
  /// Back to the start state of the current episode (no action in flight, no transitions recorded).
  void Restart();

  /// A camera's frame of the current state (camera 0 by default; the hand's is the last of views()),
  /// S*S*3 RGB.
  std::vector<std::uint8_t> Render(int camera = 0);
  /// Every camera's frame (views() of them).
  std::vector<std::vector<std::uint8_t>> RenderViews();
  /// Every camera's pose as the model's camera token sees it (4x4, row-major), one after the other:
  /// an agent view's extrinsics (camera-to-world), the hand camera's pose on the hand (PoseOnHand).
  std::vector<double> CameraExtrinsics() const;
  /// Sends one normalized action for one control step (the controller, then the physics substeps).
  /// With a latency perturbation of L control steps, the action applied is the one sent L steps
  /// before (the first L steps hold the hand where it is, gripper as sent); from Restart on (the
  /// episode), not while Reset scripts the goal.
  void Act(const std::vector<double>& action);
  /// What the robot did since Restart, one per control step: proprio before, the action sent, proprio
  /// after (the robot's own transitions, what online adaptation learns from).
  struct Transition {
    std::vector<float> proprio, next;
    std::vector<double> action;
  };
  const std::vector<Transition>& transitions() const { return transitions_; }
  /// The full action for planned dims: [dx dy dz] as planned, the rotation that holds the start
  /// orientation (a P-correction, as the scripted policies do), the task's gripper (reach open, push
  /// closed, pick planned: a fourth dim, closed where >= 0).
  std::vector<double> FullAction(const std::vector<double>& planned) const;
  /// Dims a planner chooses: 3 (ee translation), 4 for pick (and the gripper).
  int planned_dims() const { return task_ == PlanTask::kPick ? 4 : 3; }

  /// Distance to the goal now (m): the ee for reach, the object (horizontal) for push, the object
  /// (3-D) for pick.
  double Distance() const;
  /// Distance to goal `index` (a subgoal's ee position for index < subgoals, else Distance()).
  double DistanceTo(int index) const;
  /// The same, for the goal itself of an object task, plus the ee's distance to the goal's ee, and
  /// for pick's subgoals plus the object's distance to where it is in them: how far the state is from
  /// the (sub)goal's true state (the sim oracle's energy; the images show both).
  double StateDistanceTo(int index) const;
  /// How far the goal's object is above where it rested at the start (m; pick counts as a success
  /// only if it was lifted on the way).
  double ObjectLift() const;
  /// Where the goal's object is now (world frame, m); push and pick only.
  std::array<double, 3> ObjectPos() const;
  std::array<double, 3> Ee() const;

  collect::EpisodeRunner& runner() { return *runner_; }
  const collect::EpisodeRunner& runner() const { return *runner_; }
  const robots::Embodiment& embodiment() const { return runner_->embodiment(); }
  const PlanGoal& goal() const { return goal_; }
  PlanTask task() const { return task_; }
  int image_size() const { return image_size_; }

 private:
  bool TryReset(std::int64_t index, PlanTask task, double camera_offset_deg, int attempt);
  /// The scene's camera `camera` (< views(): the agent views, then the hand's). @throws AdaptError.
  sim::Camera CameraAt(int camera) const;
  /// The scene as simcollect draws episode `index` of this seed (attempt `attempt`), settled; start_.
  void DrawScene(std::int64_t index, double camera_offset_deg, int attempt);
  /// Each task's goal (and subgoals) from the start state, with the goal's own random stream; false
  /// when no goal was made in 50 tries (the scene is drawn again).
  bool MakeReachGoal(collect::Rng& rng);
  bool MakePickGoal(collect::Rng& rng);
  bool MakePushGoal(collect::Rng& rng);
  /// The scene's objects whose (first) geom is of a type `keep` accepts.
  std::vector<int> ObjectsOfType(const std::function<bool(int)>& keep);
  /// Drives the ee toward `target` (at most `max_speed` of the action range per axis), then comes to
  /// rest (25 steps still driven there with `hold`); `gripper`: pick's fourth dim (open < 0 <= closed).
  void DriveEeTo(const std::array<double, 3>& target, int max_steps, double max_speed = 1.0, bool hold = false, double gripper = -1,
                 const std::function<void()>& each_step = {});

  collect::CollectConfig config_;
  std::unique_ptr<collect::EpisodeRunner> runner_;
  int image_size_ = 0;
  PlanTask task_ = PlanTask::kReach;
  std::vector<double> start_;
  std::array<double, 4> start_quat_{};
  double object_rest_z_ = 0;
  int push_waypoints_ = 0, views_ = 1;  ///< views_: the agent views
  bool hand_ = false;
  double reach_min_m_ = 0.10, reach_max_m_ = 0.30;
  PlanGoal goal_;
  Perturbation perturbation_;
  std::vector<std::vector<double>> in_flight_;  ///< actions sent, not yet applied (latency)
  bool acting_ = false;                         ///< after Restart: latency applies (not while a goal is scripted)
  std::vector<Transition> transitions_;
};

/// How well a planner's model foresaw what the robot did in one episode (planners that use the
/// learned model; empty otherwise).
struct ModelErrors {
  /// Per model step t >= 1: mean |forecast of frame t - frame t| over the (layer-normalized) latents,
  /// the forecast made at t-1 from the action sent, before the model saw frame t; and copy-last's,
  /// mean |frame t-1 - frame t|.
  std::vector<double> latent, copy;
  /// Per model step t >= n (n model steps = 1 s): the end effector where the model, as it was n steps
  /// before, imagined it after the actions sent (its rollout's proprio), against where it is (cm).
  std::vector<double> ee_1s_cm;
  std::vector<double> ee_moved_cm;  ///< how far the end effector truly moved in each of those seconds (cm)
  int resets = 0;                   ///< online adaptation: times it went back to the trained model
};

/// Online adaptation (`plan --online-adapt`): the world model's per-robot parts (the action and joint
/// adapters and the embodiment token, what `adapt --trunk-lr-scale` separates, and a per-dim scale
/// and offset of the dynamics model's predicted proprio change) learn during the episode from the
/// robot's own last model steps (frames seen, actions sent, proprio), the trunk, the dynamics MLP and
/// the encoder frozen; back to the trained weights at every episode's start, and whenever over the
/// last window the adapted model foresaw the new frames (before learning from them) worse than the
/// trained model would have (measured: with a latency of 4 control steps, adaptation without this
/// check reached 1 of the first 9 episodes, the arm ending up to a metre off, where the unadapted
/// planner reached 10 of 10). The dynamics model is
/// corrected, not retrained: its weights moved by a few dozen transitions made its 1 s forecasts
/// worse (measured: gains x0.1, 13.9 cm against 5.5 cm unadapted), a scale and offset per output
/// (a slower arm, a sagging one) are well posed from them.
struct OnlineAdaptOptions {
  bool enabled = false;
  int steps = 4;     ///< gradient steps per model step
  double lr = 0.05;  ///< SGD's
  int window = 8;    ///< the most recent model steps learned from
  /// "dynamics": the dynamics correction alone; "all": also the predictor's adapters and token.
  std::string parts = "all";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OnlineAdaptOptions, enabled, steps, lr, window, parts)

/// The gradient steps of online adaptation on one embodiment of `model` (LatentPlanner uses it; tests
/// drive it directly). Losses: squared errors relative to copy-last for the latents (teacher forcing
/// over the window's model steps), squared errors of the corrected dynamics' proprio changes (in units
/// of the trained normalizer's spread) on the window's control steps: an update proportional to the
/// error, none where the model is right.
class OnlineAdapter {
 public:
  /// Remembers the trained weights. @throws AdaptError for an embodiment the model lacks.
  OnlineAdapter(WorldModel& model, const std::string& embodiment, const OnlineAdaptOptions& options);
  /// Restores the trained weights.
  ~OnlineAdapter();
  OnlineAdapter(const OnlineAdapter&) = delete;
  OnlineAdapter& operator=(const OnlineAdapter&) = delete;
  /// The trained weights back, the optimizer's state cleared.
  void Reset();
  /// options.steps gradient steps on every window of min(context, T - 1) + 1 frames among the last
  /// options.window + 1 of `latents` (T, N, D) with `proprio` (T, P), `actions` (T - 1, k A; the k
  /// actions of each model step) and `camera` (12 per camera), and on the control-step transitions
  /// `dyn_proprio` (M, P), `dyn_actions` (M, A), `dyn_next` (M, P) (empty: the dynamics model is left
  /// as it is). Nothing when T < 2. Returns the loss before the first step (NaN when nothing ran).
  double Step(const torch::Tensor& latents, const torch::Tensor& proprio, const torch::Tensor& actions, const torch::Tensor& camera,
              const torch::Tensor& dyn_proprio, const torch::Tensor& dyn_actions, const torch::Tensor& dyn_next, int context);
  /// Runs `fn` with the trained weights, then puts the current ones back.
  void WithTrained(const std::function<void()>& fn);
  /// The dynamics correction now (for forecasts judged later by the model as it was).
  std::vector<torch::Tensor> DynamicsSnapshot() const;
  /// Runs `fn` with the dynamics correction set to `snapshot`, then puts the current one back.
  void WithDynamics(const std::vector<torch::Tensor>& snapshot, const std::function<void()>& fn);

 private:
  /// The dynamics output's correction applied to the model's normalizer: delta_std = std0 exp(log_scale)
  /// (one speed factor for every dim, within x0.1 .. x3), delta_mean = mean0 + std0 offset (per dim,
  /// within one spread; both zero: the trained model).
  void SetDynamicsCorrection(bool keep_graph);
  WorldModel& model_;
  std::string embodiment_;
  OnlineAdaptOptions options_;
  std::vector<torch::Tensor> params_, trained_;  ///< the adapters' weights, then log_scale_ and offset_
  torch::Tensor log_scale_, offset_, std0_, mean0_;
  std::unique_ptr<torch::optim::SGD> optimizer_;
};

/// Chooses one normalized action (the planned dims, PlanScene::planned_dims()) per model step.
class Planner {
 public:
  virtual ~Planner() = default;
  virtual std::string name() const = 0;
  /// Called once per episode, with the scene at its start state.
  virtual void Begin(PlanScene& scene) = 0;
  /// Called once at the episode's end (a planner that changed its model puts it back).
  virtual void End() {}
  /// How well the planner's model foresaw the episode (empty for planners without a learned model).
  virtual ModelErrors errors() const { return {}; }
  /// The next model step's planned action; `energy` receives the plan's energy (NaN if none).
  virtual std::vector<double> Next(PlanScene& scene, double* energy) = 0;
  /// What the last Next imagined for the plan it chose, (horizon, N, D) latents; undefined for a
  /// planner that does not imagine in latent space.
  virtual torch::Tensor imagined() const { return {}; }
};

/// CEM on the world model in latent space toward the goal image.
class LatentPlanner : public Planner {
 public:
  /// `energy`: "final" (the last imagined step against the goal, V-JEPA 2-AC's) or "mean" (every step;
  /// the same choice for every CEM planner: distances to the goal instead of latent L1 for the oracles).
  /// @throws AdaptError when the model has no such embodiment or the encoder is not the model's.
  /// `context`: true model steps the predictor sees (0: the model's own context).
  /// `subgoal_steps`: model steps spent on each of the goal's subgoals before the goal (0: the goal only).
  /// `online`: adapt the model's per-robot parts during each episode (OnlineAdaptOptions).
  LatentPlanner(WorldModel& model, FrozenEncoder& encoder, const std::string& embodiment, const CemOptions& cem, const std::string& energy = "final",
                int context = 0, int subgoal_steps = 0, const OnlineAdaptOptions& online = {});
  std::string name() const override { return "model"; }
  void Begin(PlanScene& scene) override;
  std::vector<double> Next(PlanScene& scene, double* energy) override;
  void End() override;
  ModelErrors errors() const override { return errors_; }
  /// Layer-normalized latents of one frame (N, D), as stage two sees them.
  torch::Tensor EncodeFrame(const std::vector<std::uint8_t>& rgb, int size);
  /// The same for every camera's frame of one moment, each camera's tokens in turn (views x N, D):
  /// the latents of a model that reads several cameras.
  torch::Tensor EncodeViews(const std::vector<std::vector<std::uint8_t>>& views, int size);
  /// Imagined model steps per second in the last Next (samples x iterations x horizon / seconds).
  double imagined_steps_per_s() const { return imagined_steps_per_s_; }
  /// The chosen plan's imagined latents (the CEM mean, rolled out once more).
  torch::Tensor imagined() const override { return imagined_; }
  /// The latents (N, D) the next Next aims at instead of the goal's or a subgoal image's (a higher
  /// level's subgoal); undefined: the goal (or subgoal image) as scheduled.
  void set_target(const torch::Tensor& latent) { override_ = latent; }
  /// Replaces the actions recorded for the last model step (k A, as sent: the k control steps' actions
  /// one after the other) by the ones the robot executed, when another planner chose them (a slow
  /// level whose step the fast level acted out).
  void set_last_action(const torch::Tensor& actions);
  /// The goal image's latents (N, D, on the model's device) and the last frame's seen by Next (CPU).
  const torch::Tensor& goal_latent() const { return targets_.back(); }
  const torch::Tensor& last_latent() const { return latents_.back(); }

 private:
  WorldModel& model_;
  FrozenEncoder& encoder_;
  std::string embodiment_;
  CemOptions cem_;
  bool final_only_ = true;
  int context_ = 0, subgoal_steps_ = 0, step_ = 0;
  torch::Tensor camera_, warm_, imagined_, override_;
  std::vector<torch::Tensor> targets_;                      ///< the subgoals' latents, then the goal's
  std::vector<torch::Tensor> latents_, proprio_, actions_;  ///< history, one per model step
  double imagined_steps_per_s_ = 0;
  std::unique_ptr<OnlineAdapter> online_;
  OnlineAdaptOptions online_options_;
  std::vector<std::vector<torch::Tensor>> dynamics_at_;  ///< online: the dynamics weights each model step planned with
  int steps_per_second_ = 5;
  ModelErrors errors_;
  /// Online: the next-frame errors of the adapted and the trained model, the last window's since the
  /// last reset (the adaptation is kept while its sum is not above the trained model's).
  std::vector<std::pair<double, double>> recent_;
  /// The forecasts of the frame just seen (latents_.back()), made before it was seen.
  void RecordErrors();
  void Adapt(PlanScene& scene);
};

/// Two timescales (`plan --hierarchy`): a slow world model (the same latents, a model step of K
/// control steps, e.g. 20 = 1 s at 20 Hz) plans toward the goal image over `horizon` slow steps; the
/// first slow step's imagined latents are the subgoal the fast level (LatentPlanner, today's planner)
/// plans toward, for the K / k fast steps of that slow step; then the slow level plans again from
/// the frame it sees (both closed loop). Where the slow plan expects no progress (SubgoalOnTheWay),
/// or to be nearest the goal on its first step, the fast level aims at the goal itself. Goal images:
/// the final one alone.
struct HierarchyOptions {
  bool enabled = false;
  int horizon = 3;              ///< slow model steps planned ahead
  std::string energy = "mean";  ///< the slow plan's: "final" or "mean" (every slow step against the goal)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HierarchyOptions, enabled, horizon, energy)

class HierarchicalPlanner : public Planner {
 public:
  /// `fast` plans as LatentPlanner does (`cem`, `energy`, `context`) toward the slow level's subgoal;
  /// `slow` with the same CEM over `hierarchy.horizon` slow steps toward the goal. @throws AdaptError
  /// when the slow model lacks the embodiment, reads other cameras, or its step is not a multiple of
  /// the fast model's.
  HierarchicalPlanner(WorldModel& fast, WorldModel& slow, FrozenEncoder& encoder, const std::string& embodiment, const CemOptions& cem,
                      const std::string& energy, int context, const HierarchyOptions& hierarchy);
  std::string name() const override { return "hierarchy"; }
  void Begin(PlanScene& scene) override;
  void End() override;
  std::vector<double> Next(PlanScene& scene, double* energy) override;
  ModelErrors errors() const override { return fast_.errors(); }
  torch::Tensor imagined() const override { return fast_.imagined(); }
  /// Per executed (fast) model step, the subgoal latents (N, D) it aimed at, on the CPU.
  const std::vector<torch::Tensor>& subgoals() const { return subgoals_; }
  /// Per slow plan, its energy, and whether its subgoal was used (else the goal itself).
  const std::vector<double>& slow_energy() const { return slow_energy_; }
  const std::vector<bool>& used_subgoal() const { return used_; }
  /// Per slow plan, the L1 distance to the goal's latents of the frame then and of each imagined slow step.
  const std::vector<std::vector<double>>& goal_l1() const { return goal_l1_; }
  /// Fast model steps per slow one (the slow level plans again after them).
  int replan_every() const { return every_; }
  double imagined_steps_per_s() const { return fast_.imagined_steps_per_s(); }
  /// How well the slow model foresaw each slow step the robot then made (LatentPlanner::errors()).
  ModelErrors slow_errors() const { return slow_.errors(); }

 private:
  LatentPlanner fast_, slow_;
  int every_ = 5, k_ = 4, step_ = 0;
  torch::Device device_;
  torch::Tensor subgoal_;
  std::vector<torch::Tensor> subgoals_, executed_;  ///< executed_: the fast steps' actions since the last slow plan
  std::vector<double> slow_energy_;
  std::vector<bool> used_;
  std::vector<std::vector<double>> goal_l1_;
};

/// The hierarchy's rule for a slow plan whose imagined steps are at `imagined_to_goal` (L1 to the
/// goal's latents, per slow step) from a frame at `now_to_goal`: its first step is a subgoal when the
/// plan expects to get nearer the goal than now, and not already on its first step (a detour first
/// away from the goal is allowed); otherwise the fast level aims at the goal itself.
bool SubgoalOnTheWay(const std::vector<double>& imagined_to_goal, double now_to_goal);

/// CEM on the learned dynamics model toward the goal's true ee position (reach only): the oracle.
class DynamicsPlanner : public Planner {
 public:
  DynamicsPlanner(WorldModel& model, const std::string& embodiment, const CemOptions& cem, const std::string& energy = "final");
  std::string name() const override { return "oracle"; }
  void Begin(PlanScene& scene) override;
  std::vector<double> Next(PlanScene& scene, double* energy) override;

 private:
  WorldModel& model_;
  std::string embodiment_;
  CemOptions cem_;
  bool final_only_ = true;
  torch::Tensor warm_;
};

/// CEM with MuJoCo itself as the model (each sample simulated from the current state) toward the
/// goal's true state (StateDistanceTo): a perfect model. Costly (one simulation per sample); tests and small runs.
class SimPlanner : public Planner {
 public:
  SimPlanner(const CemOptions& cem, int frame_skip, const std::string& energy = "final", int subgoal_steps = 0);
  std::string name() const override { return "sim"; }
  void Begin(PlanScene& scene) override;
  std::vector<double> Next(PlanScene& scene, double* energy) override;

 private:
  CemOptions cem_;
  int frame_skip_, subgoal_steps_ = 0, step_ = 0;
  bool final_only_ = true;
  torch::Tensor warm_;
};

/// Uniform actions over the whole normalized range [-1, 1] (not the CEM bound).
class RandomPlanner : public Planner {
 public:
  std::string name() const override { return "random"; }
  void Begin(PlanScene&) override {}
  std::vector<double> Next(PlanScene& scene, double* energy) override;
};

class StillPlanner : public Planner {
 public:
  std::string name() const override { return "still"; }
  void Begin(PlanScene&) override {}
  std::vector<double> Next(PlanScene& scene, double* energy) override;
};

struct MpcOptions {
  int max_steps = 20;       ///< model steps per episode
  double success_m = 0.05;  ///< success: distance to the goal below this (pick: and the object lifted)
  int frame_skip = 4;       ///< control steps per model step (the world model's)
  double lift_m = 0.03;     ///< pick: how far the object must have been lifted (last: {steps, radius, skip} leaves it)
  /// false: act all max_steps model steps even after success (model-error curves over a fixed time);
  /// success is then having been within success_m at some model step.
  bool stop_at_success = true;
};

struct MpcResult {
  bool success = false;
  int steps = 0;          ///< model steps executed
  double max_lift_m = 0;  ///< pick: the object's highest lift above its start over the executed steps
  double final_distance_m = 0;
  std::vector<double> distance_m;  ///< before each model step, and at the end
  std::vector<double> energy;      ///< the plan's energy at each model step
  double plan_seconds = 0;         ///< total time spent choosing actions
  ModelErrors errors;              ///< the planner's errors()
};

/// What an episode looked like, for replays and videos: camera 0's frame before every model step and
/// at the end (steps + 1 frames, S*S*3), and per model step the planner's imagined plan (its
/// imagined(): (horizon, N, D), undefined for planners that do not imagine).
struct MpcTrace {
  std::vector<std::vector<std::uint8_t>> frames;
  std::vector<torch::Tensor> imagined;
};

/// Runs one closed-loop episode from the scene's start state (it restarts the scene first); with a
/// `trace`, also records it (rendering costs a frame per model step; the actions are unchanged).
MpcResult RunMpc(PlanScene& scene, Planner& planner, const MpcOptions& options, MpcTrace* trace = nullptr);

}  // namespace embody::adapt

namespace embody::adapt {

/// A whole `plan` run: the model planner, the baselines and the oracle on the same episodes, and the
/// model planner again per camera offset.
struct PlanRunOptions {
  std::string embodiment = "franka";
  std::string robot;  ///< the scene's robot for robots::FindEmbodiment (a descriptor path); empty: embodiment
  PlanTask task = PlanTask::kReach;
  int episodes = 50;
  std::uint64_t seed = 1000;  ///< scene seed: keep it apart from the training data's
  collect::RandomizationConfig randomization = collect::RandomizationConfig::All(collect::Level::kLight);
  /// Actions bounded to 0.2 (1 cm of ee target per control step): measured on the demo model, larger
  /// bounds let CEM find actions the world model mispredicts (success 45 % at 1.0, 70 % at 0.5, 90 % at 0.2).
  CemOptions cem{256, 4, 32, 3, 0.6, 0.05, 0.2};
  std::string energy = "mean";
  int context = 0;              ///< the latent planner's (0: the model's)
  MpcOptions mpc{30, 0.05, 4};  ///< frame_skip is taken from the model
  std::vector<double> camera_offsets = {0};
  bool baselines = true;
  std::string oracle = "auto";                ///< "dynamics" | "sim" | "none" | "auto" (reach: dynamics; push, pick: sim)
  CemOptions oracle_cem;                      ///< the sim oracle's (smaller: one simulation per sample)
  int replay_episodes = 0;                    ///< the first episodes' model runs (offset 0) traced for a replay
  int subgoal_steps = 8;                      ///< model steps per subgoal (push, pick), for the model and the sim oracle; 0: the goal only
  int push_waypoints = 0;                     ///< push: subgoals along the push line (PlanScene::set_push_waypoints)
  std::array<double, 2> reach_cm = {10, 30};  ///< reach: the goal's distance from the start, min and max (cm)
  /// The robot changed (adapt/plan/perturbation.h): the model planner, baselines and oracle run on the
  /// perturbed scene; the model planner also runs on the nominal one (baselines.nominal) and, with
  /// online adaptation, perturbed without it (baselines.frozen).
  Perturbation perturbation;
  OnlineAdaptOptions online;
  /// Two levels (HierarchicalPlanner; RunPlanning's `slow` model): the model planner is the
  /// hierarchy, the flat latent planner runs on the same episodes (baselines.flat); goal images: the
  /// final one alone (subgoal_steps must be 0).
  HierarchyOptions hierarchy;
};

/// A model-planner episode traced for a replay.
struct PlanTrace {
  int episode = 0;
  MpcResult result;
  MpcTrace trace;
  std::vector<std::uint8_t> goal_image;
  std::vector<std::uint8_t> target_images;     ///< per executed model step, the image it aimed at (a subgoal's or the goal's)
  ModelErrors frozen_errors;                   ///< with online adaptation: the same episode planned without it
  std::vector<torch::Tensor> subgoal_latents;  ///< hierarchy: per executed model step, the slow level's subgoal (N, D)
};

/// Runs it and returns the results JSON (success_rate, episodes, seconds_per_action, perturbation,
/// online_adapt, model_error, baselines.{random,still,nominal,frozen}.success_rate, oracle.success_rate, by_camera_offset, per-episode detail).
/// `model_encoder_hash` is the encoder the model was trained on (LoadWorldModel's). `log` receives one
/// line per episode. @throws AdaptError on a model/encoder/embodiment mismatch, naming both sides.
/// `traces` receives the first options.replay_episodes episodes' model runs. `slow`: the slow level
/// for options.hierarchy (trained on the same encoder; required then, refused otherwise).
nlohmann::json RunPlanning(WorldModel& model, const std::string& model_encoder_hash, FrozenEncoder& encoder, const PlanRunOptions& options,
                           const std::function<void(const std::string&)>& log = {}, std::vector<PlanTrace>* traces = nullptr,
                           WorldModel* slow = nullptr);

}  // namespace embody::adapt
