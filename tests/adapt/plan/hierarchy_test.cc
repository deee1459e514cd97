// Tests for planning on two timescales (HierarchicalPlanner, plan --hierarchy): the subgoal rule, a
// perfect slow model on a synthetic latent space that needs a detour, an untrained slow model is
// copy-last, and the whole run end to end with its refusals.
#include <algorithm>
#include <array>
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"
#include "adapt/plan/planner.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;

collect::RandomizationConfig Light() { return collect::RandomizationConfig::All(collect::Level::kLight); }

TEST(HierarchyTest, SubgoalRuleTakesPlansThatGetNearerEvenByADetour) {
  EXPECT_TRUE(SubgoalOnTheWay({0.3, 0.2, 0.1}, 0.4));    // nearer at every step
  EXPECT_TRUE(SubgoalOnTheWay({0.6, 0.5, 0.1}, 0.4));    // first away from the goal, then nearer than now: a detour
  EXPECT_FALSE(SubgoalOnTheWay({0.1, 0.2, 0.3}, 0.4));   // nearest on its first step: aim at the goal itself
  EXPECT_FALSE(SubgoalOnTheWay({0.5, 0.45, 0.4}, 0.4));  // never nearer than now
  EXPECT_FALSE(SubgoalOnTheWay({}, 0.4));
}

// A synthetic latent space where the latent is the position of a point in the plane, with a wall
// x = 1, |y| <= 0.7 that stops any move across it. The goal (2, 0) lies behind the wall; a slow step
// holds an action for 5 fast steps of 0.2 x action each. With a perfect slow model (these dynamics)
// CEM plans 3 slow steps toward the goal (energy "mean", plan's default); SubgoalOnTheWay picks the first imagined step
// as the subgoal, and a perfect fast level moves straight to it: the point goes around the wall and
// arrives (within 0.15 in L1: CEM's precision). The fast level alone, straight to the goal, stops at
// the wall, 1 away.
using Point = std::array<double, 2>;
Point Move(Point p, const Point& a) {
  for (int i = 0; i < 5; ++i) {
    Point next = {p[0] + 0.2 * a[0], p[1] + 0.2 * a[1]};
    if (p[0] < 1 && next[0] >= 1 && std::abs(next[1]) <= 0.7) next[0] = 0.99;  // the wall
    p = next;
  }
  return p;
}
double L1(const Point& a, const Point& b) { return std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]); }
// The fast level: up to 0.2 per step toward the target, 5 steps (one slow step).
Point Toward(Point p, const Point& target) {
  const Point d = {target[0] - p[0], target[1] - p[1]};
  const double n = std::max({std::abs(d[0]), std::abs(d[1]), 1e-9});
  const double s = std::min(1.0, n / 1.0);  // a whole slow step covers at most 1 per axis
  return Move(p, {s * d[0] / n, s * d[1] / n});
}

TEST(HierarchyTest, APerfectSlowModelLeadsAroundAWallThatStopsTheFlatPlanner) {
  const Point goal = {2, 0};
  torch::manual_seed(4);
  const CemOptions cem{256, 6, 24, 3, 0.8, 0.05, 1.0};
  Point p = {0, 0};
  int subgoals_used = 0;
  for (int slow_step = 0; slow_step < 8 && L1(p, goal) > 0.15; ++slow_step) {
    std::vector<Point> best_path;
    // (S, 3, 2) -> (S): the plan's energy, "mean" (the imagined steps' L1 to the goal, averaged).
    const auto energy = [&](const torch::Tensor& plans) {
      torch::Tensor e = torch::empty({plans.size(0)});
      const auto a = plans.to(torch::kFloat64).contiguous();
      for (int64_t s = 0; s < plans.size(0); ++s) {
        Point q = p;
        double sum = 0;
        for (int h = 0; h < plans.size(1); ++h) {
          q = Move(q, {a[s][h][0].item<double>(), a[s][h][1].item<double>()});
          sum += L1(q, goal);
        }
        e[s] = sum / static_cast<double>(plans.size(1));
      }
      return e;
    };
    const CemResult plan = Cem(energy, 2, cem);
    std::vector<double> imagined_to_goal;
    std::vector<Point> imagined;
    Point q = p;
    for (int h = 0; h < cem.horizon; ++h) {
      q = Move(q, {plan.mean[h][0].item<double>(), plan.mean[h][1].item<double>()});
      imagined.push_back(q);
      imagined_to_goal.push_back(L1(q, goal));
    }
    const bool sub = SubgoalOnTheWay(imagined_to_goal, L1(p, goal));
    subgoals_used += sub;
    p = Toward(p, sub ? imagined[0] : goal);
  }
  EXPECT_LT(L1(p, goal), 0.15) << "the hierarchy ended at (" << p[0] << ", " << p[1] << ")";
  EXPECT_GE(subgoals_used, 1);  // it got there through subgoals, not by aiming at the goal
  Point flat = {0, 0};
  for (int step = 0; step < 8; ++step) flat = Toward(flat, goal);
  EXPECT_GT(L1(flat, goal), 0.9) << "the wall does not stop a straight path: the test shows nothing";
}

TEST(HierarchyTest, AnUntrainedSlowModelIsCopyLast) {
  PlanScene probe("franka", Light(), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  WorldModel slow = tiny::Untrained(tiny::SmallPredictor(8), spec);
  slow.Train(false);
  torch::manual_seed(1);
  const auto z = torch::randn({2, 1, 1, 16}), p = torch::randn({2, 1, spec.proprio_dim()});
  const auto a = torch::rand({2, 3, 8 * spec.action_dim}) * 2 - 1;
  const auto camera = torch::randn({2, 12});
  const auto imagined = slow.Rollout("franka", z, p, a, camera, 3);
  for (int h = 0; h < 3; ++h) EXPECT_TRUE(torch::allclose(imagined.select(1, h), z.select(1, 0), 1e-6, 1e-6)) << h;
}

// The run end to end on untrained tiny models (fast step 2 control steps, slow step 4): what the
// results say, the subgoals traced for the replay, the flat planner beside it, determinism, and
// refusals named.
TEST(HierarchyTest, RunsEndToEndBesideTheFlatPlannerAndRefusesMismatches) {
  PlanScene probe("franka", Light(), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  WorldModel fast = tiny::Untrained(tiny::SmallPredictor(2), spec);
  PredictorConfig slow_config = tiny::SmallPredictor(4);
  slow_config.context = 1;
  WorldModel slow = tiny::Untrained(slow_config, spec);
  FrozenEncoder encoder = FrozenEncoder::Random({32, 8, 16, "vector", 32}, 4);

  PlanRunOptions o;
  o.episodes = 1;
  o.seed = 5;
  o.cem = {16, 2, 4, 2, 0.6, 0.05, 0.2};
  o.mpc.max_steps = 3;
  o.oracle = "none";
  o.baselines = false;
  o.replay_episodes = 1;
  o.hierarchy.enabled = true;
  o.hierarchy.horizon = 2;
  std::vector<PlanTrace> traces;
  const auto r = RunPlanning(fast, encoder.hash(), encoder, o, {}, &traces, &slow);
  EXPECT_EQ(r["hierarchy"]["levels"], 2);
  EXPECT_EQ(r["hierarchy"]["slow_frame_skip"], 4);
  EXPECT_EQ(r["hierarchy"]["fast_steps_per_slow_step"], 2);
  EXPECT_EQ(r["hierarchy"]["slow_horizon"], 2);
  EXPECT_EQ(r["goal_images"], "final");
  EXPECT_TRUE(r["baselines"]["flat"]["success_rate"].is_number());
  EXPECT_TRUE(r["success_rate"].is_number());
  EXPECT_TRUE(r["seconds_per_action"].is_number());
  const auto& model = r["per_episode"][0]["model"];
  EXPECT_EQ(model["steps"], 3);
  EXPECT_EQ(model["slow_energy"].size(), 2u);  // slow plans at fast steps 0 and 2
  EXPECT_EQ(model["used_subgoal"].size(), 2u);
  ASSERT_EQ(model["slow_goal_l1"].size(), 2u);
  EXPECT_EQ(model["slow_goal_l1"][0].size(), 3u);  // the frame then, and each of the 2 imagined slow steps
  EXPECT_EQ(r["per_episode"][0]["flat"]["steps"], 3);
  ASSERT_EQ(traces.size(), 1u);
  ASSERT_EQ(traces[0].subgoal_latents.size(), 3u);  // one per executed step
  EXPECT_EQ(traces[0].subgoal_latents[0].sizes().vec(), (std::vector<int64_t>{1, 16}));
  // The untrained slow model imagines no change: its plans never get nearer, so the fast level aims
  // at the goal itself (the goal's latents are what it traced).
  for (const auto& used : model["used_subgoal"]) EXPECT_FALSE(used.get<bool>());
  // Deterministic.
  const auto again = RunPlanning(fast, encoder.hash(), encoder, o, {}, nullptr, &slow);
  EXPECT_EQ(again["per_episode"], r["per_episode"]);

  auto refused = [&](const PlanRunOptions& options, WorldModel* level, const std::string& why) {
    try {
      RunPlanning(fast, encoder.hash(), encoder, options, {}, nullptr, level);
      ADD_FAILURE() << "accepted; expected: " << why;
    } catch (const AdaptError& e) {
      EXPECT_THAT(e.what(), HasSubstr(why));
    }
  };
  refused(o, nullptr, "needs the slow model");
  PlanRunOptions flat = o;
  flat.hierarchy.enabled = false;
  refused(flat, &slow, "without the hierarchy");
  PlanRunOptions push = o;
  push.task = PlanTask::kPush;
  push.subgoal_steps = 8;
  refused(push, &slow, "--subgoal-steps must be 0");
  PlanRunOptions online = o;
  online.online.enabled = true;
  refused(online, &slow, "does not combine");
  PredictorConfig odd = slow_config;
  odd.frame_skip = 3;  // not a whole number of fast steps
  WorldModel odd_slow = tiny::Untrained(odd, spec);
  refused(o, &odd_slow, "must be a multiple of the fast model's (2)");
  PredictorConfig same = slow_config;
  same.frame_skip = 2;  // no slower than the fast level
  WorldModel same_slow = tiny::Untrained(same, spec);
  refused(o, &same_slow, "and longer");

  // The slow level's history holds what the robot did: a model step's actions replaced by the
  // executed ones, of the model step's size only.
  LatentPlanner level(slow, encoder, "franka", o.cem);
  EXPECT_THROW(level.set_last_action(torch::zeros({4 * spec.action_dim})), AdaptError);  // before any step
  probe.Reset(0, PlanTask::kReach);
  probe.Restart();
  level.Begin(probe);
  level.Next(probe, nullptr);
  level.set_last_action(torch::ones({4 * spec.action_dim}));
  EXPECT_THROW(level.set_last_action(torch::ones({2 * spec.action_dim})), AdaptError);
}

}  // namespace
}  // namespace embody::adapt
