// Tests for goal-image planning (adapt/plan/planner.cc): CEM on a known function, goals and success
// scored from MuJoCo state, the closed loop with a perfect model (MuJoCo itself), and refusals.
#include "adapt/plan/planner.h"
#include "adapt/plan/plan_replay.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;

collect::RandomizationConfig Light() { return collect::RandomizationConfig::All(collect::Level::kLight); }
// Horizontal distance (m).
double Norm2(const std::array<double, 3>& a, const std::array<double, 3>& b) { return std::hypot(a[0] - b[0], a[1] - b[1]); }

TEST(CemTest, MinimizesAKnownQuadratic) {
  torch::manual_seed(1);
  const auto target = torch::tensor({{0.3, -0.5, 0.1}, {-0.2, 0.6, 0.0}});  // (H 2, dims 3)
  auto energy = [&](const torch::Tensor& plans) { return (plans - target).pow(2).sum({1, 2}); };
  CemOptions o;
  o.samples = 128;
  o.iterations = 8;
  o.elites = 16;
  o.horizon = 2;
  const CemResult r = Cem(energy, 3, o);
  EXPECT_LT((r.mean - target).abs().max().item<double>(), 0.05) << r.mean;
  EXPECT_LT(r.mean_energy, 0.01);
  ASSERT_EQ(r.elite_energy.size(), 8u);
  EXPECT_LT(r.elite_energy.back(), r.elite_energy.front());
  // Bounds hold: a minimum outside [-bound, bound] is approached from inside.
  o.bound = 0.2;
  const CemResult bounded = Cem(energy, 3, o);
  EXPECT_LE(bounded.mean.abs().max().item<double>(), 0.2 + 1e-6);
  EXPECT_NEAR(bounded.mean[0][1].item<double>(), -0.2, 0.02);
  // A warm start near the optimum keeps the plan near it (MPC's shifted previous plan).
  o.bound = 1;
  o.iterations = 1;
  EXPECT_LT(Cem(energy, 3, o, target).mean_energy, 0.1);
  o.elites = 500;
  EXPECT_THROW(Cem(energy, 3, o), AdaptError);
}

TEST(PlanSceneTest, GoalImageIsARenderOfTheGoalStateAndSuccessIsScoredFromState) {
  PlanScene scene("franka", Light(), 32, 11);
  for (int e = 0; e < 2; ++e) {
    scene.Reset(e, PlanTask::kReach);
    const auto start_ee = scene.Ee();
    const double start = scene.Distance();
    EXPECT_GE(start, 0.09) << "episode " << e;
    EXPECT_LE(start, 0.31) << "episode " << e;
    ASSERT_EQ(scene.goal().image.size(), 32u * 32 * 3);
    // The goal state re-rendered gives the goal image, pixel for pixel, and is scored a success.
    scene.runner().world().SetState(scene.goal().state);
    EXPECT_EQ(scene.Render(), scene.goal().image);
    EXPECT_LT(scene.Distance(), 0.01);
    // The start frame differs from the goal frame (the arm moved), and Restart puts the arm back.
    scene.Restart();
    EXPECT_NE(scene.Render(), scene.goal().image);
    EXPECT_DOUBLE_EQ(scene.Distance(), start);
    EXPECT_EQ(scene.Ee(), start_ee);
  }
  // The same (seed, index) gives the same scene and goal.
  scene.Reset(1, PlanTask::kReach);
  const auto goal = scene.goal().ee;
  const auto image = scene.goal().image;
  scene.Reset(0, PlanTask::kReach);
  scene.Reset(1, PlanTask::kReach);
  EXPECT_EQ(scene.goal().ee, goal);
  EXPECT_EQ(scene.goal().image, image);
  // Standing still scores from state: no success, distance unchanged.
  StillPlanner still;
  const MpcResult r = RunMpc(scene, still, {3, 0.05, 4});
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.steps, 3);
  EXPECT_NEAR(r.final_distance_m, r.distance_m.front(), 0.01);
  // Push: the arm pushed an object 8-22 cm for the goal; the distance is the object's. The two
  // subgoals (above the point behind the object, then down at it) re-render to their images.
  scene.Reset(0, PlanTask::kPush);
  EXPECT_GE(scene.Distance(), 0.08);
  EXPECT_LE(scene.Distance(), 0.22);
  ASSERT_EQ(2u, scene.goal().subgoals.size());
  for (int i = 0; i < 2; ++i) {
    const PlanSubgoal& sub = scene.goal().subgoals[i];
    scene.runner().world().SetState(sub.state);
    EXPECT_EQ(scene.Render(), sub.image);
    EXPECT_LT(scene.DistanceTo(i), 0.02);
    EXPECT_GT(scene.Distance(), 0.07);  // the object has not moved yet
  }
  EXPECT_GT(scene.goal().subgoals[0].ee[2] - scene.goal().subgoals[1].ee[2], 0.1);
  scene.runner().world().SetState(scene.goal().state);
  EXPECT_LT(scene.Distance(), 1e-6);
  EXPECT_EQ(scene.DistanceTo(2), scene.Distance());
  EXPECT_EQ(0, SubgoalAt(3, 4, 2));
  EXPECT_EQ(1, SubgoalAt(4, 4, 2));
  EXPECT_EQ(2, SubgoalAt(50, 4, 2));
  EXPECT_EQ(2, SubgoalAt(0, 0, 2));
  // With waypoints: the same push and goal, and two more subgoals on the way, the arm a third and two
  // thirds along the line (in order), the object moved part of the way.
  const auto push_goal = scene.goal();
  scene.set_push_waypoints(2);
  scene.Reset(0, PlanTask::kPush);
  scene.set_push_waypoints(0);
  ASSERT_EQ(4u, scene.goal().subgoals.size());
  EXPECT_EQ(push_goal.state, scene.goal().state);
  EXPECT_EQ(push_goal.image, scene.goal().image);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(push_goal.subgoals[i].state, scene.goal().subgoals[i].state);
  const auto& line = scene.goal().subgoals;
  const double full = Norm2(push_goal.ee, line[1].ee);
  const double a1 = Norm2(line[2].ee, line[1].ee), a2 = Norm2(line[3].ee, line[1].ee);
  EXPECT_GT(a1, full / 3 - 0.01);
  EXPECT_LT(a1, full / 3 + 0.02);
  EXPECT_GT(a2, 2 * full / 3 - 0.01);
  EXPECT_LT(a2, full);
  std::vector<double> gaps;
  for (int i = 2; i < 4; ++i) {
    scene.runner().world().SetState(line[i].state);
    EXPECT_EQ(scene.Render(), line[i].image);
    gaps.push_back(scene.Distance());
  }
  EXPECT_LT(gaps[1], gaps[0]);
  EXPECT_GT(gaps[1], 0.0);
  // Pick: the scripted pick placed an object 10+ cm away (3-D distance, on the table again), the arm
  // lifted off it; the planner also chooses the gripper (closed where its fourth dim is >= 0).
  scene.Reset(0, PlanTask::kPick);
  EXPECT_EQ(4, scene.planned_dims());
  EXPECT_GE(scene.Distance(), 0.09);
  EXPECT_NEAR(scene.ObjectLift(), 0.0, 1e-6);
  EXPECT_EQ(1.0, scene.FullAction({0, 0, 0, 0.1})[6]);
  EXPECT_EQ(-1.0, scene.FullAction({0, 0, 0, -0.1})[6]);
  const auto start_image = scene.Render();
  scene.runner().world().SetState(scene.goal().state);
  EXPECT_LT(scene.Distance(), 1e-6);
  EXPECT_NEAR(scene.ObjectLift(), 0.0, 0.02);  // placed back on the table
  const double* obj = scene.runner().world().data()->xpos + 3 * scene.goal().object;
  EXPECT_GT(scene.Ee()[2] - obj[2], 0.05);  // the arm rose off it
  EXPECT_NE(scene.goal().image, start_image);
  const MpcOptions brief{2, 0.05, 4};  // as plan's options are written: the lift keeps its 3 cm
  EXPECT_EQ(4, brief.frame_skip);
  EXPECT_DOUBLE_EQ(0.03, brief.lift_m);
  const MpcResult held = RunMpc(scene, still, brief);
  EXPECT_FALSE(held.success);
  EXPECT_LT(held.max_lift_m, 0.01);
  // Its subgoals: the arm above the object, around it (the object still at rest), then lifted with it,
  // carried over the place and set down there; the oracle's energy counts the object in them.
  const auto& pick = scene.goal().subgoals;
  ASSERT_EQ(5u, pick.size());
  EXPECT_LT(Norm2(pick[3].object_pos, scene.goal().object_pos), 0.02);
  EXPECT_GT(pick[3].object_pos[2], pick[4].object_pos[2] + 0.1);
  EXPECT_LT(std::abs(pick[4].object_pos[2] - scene.goal().object_pos[2]), 0.02);
  EXPECT_GT(pick[0].ee[2], pick[1].ee[2] + 0.1);
  EXPECT_LT(Norm2(pick[0].ee, pick[1].ee), 0.02);
  EXPECT_LT(std::abs(pick[1].ee[2] - pick[1].object_pos[2]), 0.03);
  EXPECT_GT(pick[2].object_pos[2], pick[1].object_pos[2] + 0.1);
  scene.runner().world().SetState(pick[2].state);
  EXPECT_GT(scene.ObjectLift(), 0.1);
  EXPECT_NEAR(scene.StateDistanceTo(2), 0.0, 1e-6);
  scene.Restart();
  EXPECT_GT(scene.StateDistanceTo(2), scene.DistanceTo(2) + 0.1);
  // A moved camera renders another goal image of the same goal.
  scene.Reset(0, PlanTask::kReach, 30);
  EXPECT_NE(scene.goal().image, image);
}

TEST(MpcTest, PerfectModelReachesTheGoal) {
  PlanScene scene("franka", Light(), 32, 11);
  torch::manual_seed(2);
  SimPlanner planner({48, 3, 8, 1, 0.6, 0.05, 0.5}, 4, "mean");
  for (int e = 0; e < 2; ++e) {
    scene.Reset(e, PlanTask::kReach);
    const MpcResult r = RunMpc(scene, planner, {12, 0.05, 4});
    EXPECT_TRUE(r.success) << "episode " << e << ": " << r.distance_m.front() << " m -> " << r.final_distance_m << " m";
    EXPECT_LT(r.final_distance_m, 0.05);
    EXPECT_LT(r.steps, 12);
  }
  // Push with the subgoal schedule: a perfect model reaches the subgoals and pushes the object home.
  SimPlanner pusher({48, 3, 8, 1, 0.6, 0.05, 0.5}, 4, "mean", 6);
  scene.Reset(0, PlanTask::kPush);
  const MpcResult pushed = RunMpc(scene, pusher, {30, 0.05, 4});
  EXPECT_TRUE(pushed.success) << pushed.distance_m.front() << " m -> " << pushed.final_distance_m << " m";
  // Random actions do not (the task is not trivial).
  RandomPlanner random;
  scene.Reset(0, PlanTask::kReach);
  EXPECT_FALSE(RunMpc(scene, random, {4, 0.05, 4}).success);
}

// Follows a pick's subgoals in turn with a proportional step toward each (as the pick was made): the
// gripper open above and around the object, then closed and held a few model steps, closed while
// lifting, carrying and setting down, then open and held, and open rising to the goal's arm pose.
class SubgoalFollower : public Planner {
 public:
  explicit SubgoalFollower(bool grasp) : grasp_(grasp) {}
  std::string name() const override { return "follower"; }
  void Begin(PlanScene&) override { next_ = 0, holding_ = 0; }
  std::vector<double> Next(PlanScene& scene, double* energy) override {
    if (energy) *energy = std::nan("");
    const auto& sub = scene.goal().subgoals;
    const auto target = [&] { return next_ < sub.size() ? sub[next_].ee : scene.goal().ee; };
    const auto off = [&] {
      const auto ee = scene.Ee(), t = target();
      return std::hypot(t[0] - ee[0], t[1] - ee[1], t[2] - ee[2]);
    };
    // At "around" (1) and "set down" (4) the gripper changes and is held there for 6 model steps.
    if (holding_ > 0) {
      if (--holding_ == 0) ++next_;
    } else if (next_ <= sub.size() && off() < 0.02) {
      if (next_ == 1 || next_ == 4)
        holding_ = 6;
      else
        ++next_;
    }
    const bool closed = grasp_ && (next_ == 1 ? holding_ > 0 : next_ == 2 || next_ == 3 || (next_ == 4 && holding_ == 0));
    const auto t = target(), ee = scene.Ee();
    std::vector<double> planned(4, closed ? 1.0 : -1.0);
    const double scale = scene.embodiment().action_scale.position;
    for (int k = 0; k < 3; ++k) planned[k] = std::clamp(0.15 * (t[k] - ee[k]) / scale, -0.5, 0.5);
    return planned;
  }

 private:
  bool grasp_;
  size_t next_ = 0;
  int holding_ = 0;
};

TEST(MpcTest, FollowingThePicksSubgoalsScoresASuccessAndAnOpenHandDoesNot) {
  // End to end through RunMpc's scoring (the placed distance and the lift on the way): following the
  // pick's own subgoals with the planners' actions picks and places it; the same moves with the hand
  // never closed leave the object where it was, never lifted.
  PlanScene scene("franka", Light(), 32, 11);
  scene.Reset(0, PlanTask::kPick);
  const MpcOptions options{80, 0.05, 4};
  SubgoalFollower follower(true), open_hand(false);
  const MpcResult picked = RunMpc(scene, follower, options);
  EXPECT_TRUE(picked.success) << picked.distance_m.front() << " m -> " << picked.final_distance_m << " m, lifted " << picked.max_lift_m << " m";
  EXPECT_GT(picked.max_lift_m, 0.1);
  const MpcResult missed = RunMpc(scene, open_hand, options);
  EXPECT_FALSE(missed.success);
  EXPECT_LT(missed.max_lift_m, options.lift_m);
  EXPECT_GT(missed.final_distance_m, 0.09);
}

// An untrained world model on a random encoder: the whole run works end to end and says what it did;
// mismatches are refused with both sides named.
TEST(PlanRunTest, RunsEndToEndAndRefusesMismatches) {
  PlanScene probe("franka", Light(), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  const PredictorConfig pc = tiny::SmallPredictor(2);
  WorldModel model = tiny::Untrained(pc, spec);
  FrozenEncoder encoder = FrozenEncoder::Random({32, 8, 16, "vector", 32}, 4);

  PlanRunOptions o;
  o.episodes = 1;
  o.seed = 5;
  o.cem = {16, 2, 4, 2, 0.6, 0.05, 0.2};
  o.mpc.max_steps = 2;
  o.camera_offsets = {15};
  const auto r = RunPlanning(model, encoder.hash(), encoder, o);
  for (const char* key : {"success_rate", "episodes", "seconds_per_action", "imagined_steps_per_s"}) {
    ASSERT_TRUE(r.contains(key) && r[key].is_number()) << key;
  }
  EXPECT_TRUE(r["baselines"]["random"]["success_rate"].is_number());
  EXPECT_TRUE(r["baselines"]["still"]["success_rate"].is_number());
  EXPECT_EQ(r["oracle"]["kind"], "dynamics");
  EXPECT_TRUE(r["oracle"]["success_rate"].is_number());
  EXPECT_TRUE(r["by_camera_offset"]["0"].is_number());
  EXPECT_TRUE(r["by_camera_offset"]["15"].is_number());
  EXPECT_EQ(r["frame_skip"], 2);
  EXPECT_EQ(r["per_episode"][0]["model"]["steps"], 2);
  EXPECT_EQ(r["per_episode"][0]["model"]["energy"].size(), 2u);
  {  // where the arm started and where the goal has it: reach's start distance is theirs
    const auto start = r["per_episode"][0]["start_ee"].get<std::vector<double>>(), goal = r["per_episode"][0]["goal_ee"].get<std::vector<double>>();
    ASSERT_EQ(start.size(), 3u);
    ASSERT_EQ(goal.size(), 3u);
    EXPECT_NEAR(100 * std::hypot(goal[0] - start[0], goal[1] - start[1], goal[2] - start[2]), r["per_episode"][0]["start_distance_cm"].get<double>(),
                1e-9);
  }
  // Deterministic: the same options give the same plans.
  const auto again = RunPlanning(model, encoder.hash(), encoder, o);
  EXPECT_EQ(again["per_episode"], r["per_episode"]);
  // Traced for a replay: the same plans, a frame per model step and at the end, the chosen plan's
  // imagined latents per step; the replay file round-trips and refuses inconsistent sizes.
  o.replay_episodes = 1;
  std::vector<PlanTrace> traces;
  const auto traced = RunPlanning(model, encoder.hash(), encoder, o, {}, &traces);
  EXPECT_EQ(traced["per_episode"], r["per_episode"]);
  ASSERT_EQ(traces.size(), 1u);
  const PlanTrace& t = traces[0];
  EXPECT_TRUE(t.target_images.empty());  // reach aims at the goal throughout: no per-step targets
  ASSERT_EQ(t.trace.frames.size(), static_cast<size_t>(t.result.steps + 1));
  ASSERT_EQ(t.trace.imagined.size(), static_cast<size_t>(t.result.steps));
  EXPECT_EQ(t.trace.imagined[0].sizes().vec(), (std::vector<int64_t>{2, 1, 16}));  // horizon x tokens x latent
  EXPECT_EQ(t.trace.frames[0], [&] {
    PlanScene replay("franka", Light(), 32, 5);
    replay.Reset(0, PlanTask::kReach);
    return replay.Render();
  }());
  EXPECT_EQ(t.goal_image.size(), 32u * 32 * 3);
  PlanReplayFile file;
  file.embodiment = "franka";
  file.task = "reach";
  file.horizon = 2;
  file.image_size = 32;
  PlanReplayEpisode e;
  e.steps = t.result.steps;
  e.goal = t.goal_image;
  for (const auto& f : t.trace.frames) e.frames.insert(e.frames.end(), f.begin(), f.end());
  e.imagined.assign(static_cast<size_t>(e.steps) * 2 * 32 * 32 * 3, 7);
  e.energy = t.result.energy;
  for (double d : t.result.distance_m) e.distance_cm.push_back(100 * d);
  e.targets.assign(static_cast<size_t>(e.steps) * 32 * 32 * 3, 9);  // what each step aimed at (subgoals)
  file.episodes.push_back(e);
  const auto path = std::filesystem::temp_directory_path() / ("embody_replay_" + std::to_string(getpid()) + ".h5");
  WritePlanReplayFile(path, file);
  const PlanReplayFile back = ReadPlanReplayFile(path);
  ASSERT_EQ(back.episodes.size(), 1u);
  EXPECT_EQ(back.episodes[0].frames, e.frames);
  EXPECT_EQ(back.episodes[0].imagined, e.imagined);
  EXPECT_EQ(back.episodes[0].targets, e.targets);
  EXPECT_EQ(9, back.episodes[0].Target(0, 32)[0]);
  EXPECT_EQ(back.episodes[0].goal.data(), back.episodes[0].Target(e.steps, 32));  // after the last step: the goal
  EXPECT_EQ(back.episodes[0].distance_cm, e.distance_cm);
  EXPECT_EQ(back.horizon, 2);
  file.episodes[0].targets.pop_back();
  EXPECT_THROW(WritePlanReplayFile(path, file), AdaptError);
  file.episodes[0].targets.clear();
  file.episodes[0].frames.pop_back();
  EXPECT_THROW(WritePlanReplayFile(path, file), AdaptError);
  std::filesystem::remove(path);

  try {
    RunPlanning(model, "0123abcd", encoder, o);
    FAIL() << "an encoder the model was not trained on was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("0123abcd"));
    EXPECT_THAT(e.what(), HasSubstr(encoder.hash()));
  }
  o.embodiment = "ur5";
  try {
    RunPlanning(model, encoder.hash(), encoder, o);
    FAIL() << "a model of another embodiment was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("for franka, not ur5"));
  }
  EXPECT_THROW(PlanScene("humanoid", Light(), 32, 1), AdaptError);
  EXPECT_THROW(ParsePlanTask("juggle"), AdaptError);
  EXPECT_THROW(SimPlanner(o.cem, 2, "median"), AdaptError);
  EXPECT_THROW(DynamicsPlanner(model, "franka", o.cem, "median"), AdaptError);
  o.embodiment = "franka";
  o.task = PlanTask::kPush;
  o.oracle = "dynamics";
  EXPECT_THROW(RunPlanning(model, encoder.hash(), encoder, o), AdaptError);

  // A model of two views: the planner encodes both cameras (tokens of one frame), the run says which
  // cameras; a model whose cameras the scene cannot render in order is refused.
  PredictorConfig two = pc;
  two.tokens = 2;
  two.cameras = {"camera0", "camera1"};
  WorldModel model2 = tiny::Untrained(two, spec);
  o.task = PlanTask::kReach;
  o.oracle = "none";
  o.camera_offsets = {0};
  o.replay_episodes = 1;
  traces.clear();
  const auto r2 = RunPlanning(model2, encoder.hash(), encoder, o, {}, &traces);
  EXPECT_EQ(r2["cameras"], nlohmann::json({"camera0", "camera1"}));
  EXPECT_EQ(r2["per_episode"][0]["model"]["steps"], 2);
  ASSERT_EQ(traces.size(), 1u);
  EXPECT_EQ(traces[0].trace.imagined[0].sizes().vec(), (std::vector<int64_t>{2, 2, 16}));  // horizon x (2 cameras x 1 token) x latent
  EXPECT_EQ(traces[0].trace.frames[0], t.trace.frames[0]);                                 // the same scene as the one-camera run, camera 0 recorded
  two.cameras = {"camera1", "camera0"};
  WorldModel swapped = tiny::Untrained(two, spec);
  try {
    RunPlanning(swapped, encoder.hash(), encoder, o);
    FAIL() << "a model of cameras out of order was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("plan renders cameras camera0, camera1, ... in order"));
  }
  // A model of an agent view and the hand's camera: the scene renders both, the run says so.
  two.cameras = {"camera0", "robot0_eye_in_hand"};
  WorldModel hand = tiny::Untrained(two, spec);
  traces.clear();
  const auto r3 = RunPlanning(hand, encoder.hash(), encoder, o, {}, &traces);
  EXPECT_EQ(r3["cameras"], nlohmann::json({"camera0", "robot0_eye_in_hand"}));
  ASSERT_EQ(traces.size(), 1u);
  EXPECT_EQ(traces[0].trace.frames[0], t.trace.frames[0]);  // camera 0 recorded, the same scene
  for (const auto& order : std::vector<std::vector<std::string>>{{"robot0_eye_in_hand", "camera0"}, {"robot0_eye_in_hand"}}) {
    two.cameras = order;
    two.tokens = static_cast<int>(order.size());
    WorldModel wrong = tiny::Untrained(two, spec);
    try {
      RunPlanning(wrong, encoder.hash(), encoder, o);
      FAIL() << "a model of cameras " << nlohmann::json(order).dump() << " was accepted";
    } catch (const AdaptError& e) {
      EXPECT_THAT(e.what(), HasSubstr("plan renders"));
      EXPECT_THAT(e.what(), HasSubstr("then the hand's robot0_eye_in_hand if the model reads it"));
    }
  }
}

// Tests the camera on the hand in a planning scene: rendered after the agent views, its image changes
// where only the hand moved (the agent view's does too, the scene does not), and the camera token's
// pose of it is where it sits on the hand: the same at the start and at the goal.
TEST(PlanSceneTest, HandCameraMovesWithTheHand) {
  PlanScene scene("franka", Light(), 32, 11), agent("franka", Light(), 32, 11);
  scene.set_hand_camera(true);
  EXPECT_EQ(scene.views(), 2);
  scene.Reset(2, PlanTask::kReach);
  agent.Reset(2, PlanTask::kReach);
  ASSERT_EQ(scene.goal().views.size(), 2u);
  EXPECT_EQ(scene.goal().views[0], agent.goal().image);  // the agent view is the same scene
  const auto start = scene.RenderViews();
  EXPECT_NE(start[1], scene.goal().views[1]) << "the hand's camera saw the same at the start and at the goal";
  const auto at_start = scene.CameraExtrinsics();
  ASSERT_EQ(at_start.size(), 32u);
  EXPECT_EQ(std::vector<double>(at_start.begin(), at_start.begin() + 16), agent.CameraExtrinsics());
  scene.runner().world().SetState(scene.goal().state);
  EXPECT_EQ(scene.RenderViews(), scene.goal().views);
  const auto at_goal = scene.CameraExtrinsics();
  for (int i = 16; i < 32; ++i) EXPECT_NEAR(at_goal[i], at_start[i], 1e-9) << "the pose on the hand changed at " << i;
  EXPECT_LT(std::hypot(at_start[19], at_start[23], at_start[27]), 0.3);
  EXPECT_NE(scene.Ee(), agent.Ee());  // (the goal's ee: the hand did move)
}

// Tests a scene of two cameras: the same scene and goal as with one (camera 0 pixel for pixel), a
// second view that differs, every goal and subgoal image a re-render of its state from each camera,
// both cameras' extrinsics, and a camera offset that turns both.
TEST(PlanSceneTest, SecondCameraViewsTheSameScene) {
  PlanScene one("franka", Light(), 32, 11), two("franka", Light(), 32, 11);
  two.set_views(2);
  EXPECT_THROW(two.set_views(0), AdaptError);
  for (PlanTask task : {PlanTask::kReach, PlanTask::kPush}) {
    one.Reset(1, task);
    two.Reset(1, task);
    EXPECT_EQ(one.goal().ee, two.goal().ee);
    EXPECT_EQ(one.goal().state, two.goal().state);
    EXPECT_EQ(one.goal().image, two.goal().image);
    ASSERT_EQ(two.goal().views.size(), 2u);
    EXPECT_EQ(two.goal().views[0], two.goal().image);
    EXPECT_NE(two.goal().views[1], two.goal().image);
    ASSERT_EQ(one.goal().views.size(), 1u);
    EXPECT_EQ(one.Render(), two.Render());
    two.runner().world().SetState(two.goal().state);
    EXPECT_EQ(two.RenderViews(), two.goal().views);
    for (const PlanSubgoal& sub : two.goal().subgoals) {
      two.runner().world().SetState(sub.state);
      EXPECT_EQ(two.RenderViews(), sub.views);
      EXPECT_EQ(sub.views[0], sub.image);
    }
    EXPECT_EQ(two.goal().subgoals.size(), task == PlanTask::kPush ? 2u : 0u);
  }
  EXPECT_EQ(one.CameraExtrinsics().size(), 16u);
  const auto extrinsics = two.CameraExtrinsics();
  ASSERT_EQ(extrinsics.size(), 32u);
  EXPECT_EQ(std::vector<double>(extrinsics.begin(), extrinsics.begin() + 16), one.CameraExtrinsics());
  two.Reset(1, PlanTask::kReach, 30);
  const auto turned = two.CameraExtrinsics();
  EXPECT_NE(turned[3], extrinsics[3]);    // camera 0's position moved
  EXPECT_NE(turned[19], extrinsics[19]);  // and camera 1's
}

}  // namespace
}  // namespace embody::adapt
