// Tests for the perturbed-robot benchmark and online adaptation (adapt/plan/perturbation.cc, the
// OnlineAdapter and `plan --perturb/--online-adapt` in adapt/plan/planner.cc): each perturbation
// changes the simulated robot as named (read back from the MuJoCo model), a value equal to the
// nominal one changes nothing, the adapter moves the per-robot parts and not the trunk, and a world
// the model already predicts leaves it as it was.
#include "adapt/plan/perturbation.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"
#include "adapt/plan/planner.h"
#include "sim/world.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;

// A copy of the scene's MuJoCo model after Reset(0) with `p` (randomization none: nominal values).
struct Snapshot {
  std::vector<double> mass, damping, gain, body_pos;
  std::vector<sim::Camera> cameras;
  int ee_body = 0;
};
Snapshot Read(PlanScene& scene, const Perturbation& p) {
  scene.set_perturbation(p);
  scene.Reset(0, PlanTask::kReach);
  const mjModel* m = scene.runner().world().model();
  Snapshot s;
  s.mass.assign(m->body_mass, m->body_mass + m->nbody);
  s.damping.assign(m->dof_damping, m->dof_damping + m->nv);
  for (int a = 0; a < m->nu; ++a) s.gain.push_back(m->actuator_gainprm[a * mjNGAIN]);
  s.body_pos.assign(m->body_pos, m->body_pos + 3 * m->nbody);
  s.cameras = scene.runner().draw().cameras;
  s.ee_body = m->site_bodyid[scene.runner().EeSite()];
  return s;
}

TEST(PerturbationTest, ParsesNamesDefaultsAndRefusesBadValues) {
  EXPECT_EQ(ParsePerturbation("payload").value, 1.0);
  EXPECT_EQ(ParsePerturbation("gains=2").value, 2.0);
  EXPECT_EQ(ParsePerturbation("latency").value, 1.0);
  EXPECT_EQ(ParsePerturbation("camera=-3").ToJson()["unit"], "deg");
  EXPECT_EQ(Perturbation{}.ToJson()["name"], "none");
  try {
    ParsePerturbation("mass=2");
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown perturbation 'mass'"));
    EXPECT_THAT(e.what(), HasSubstr("payload"));  // the known ones listed
  }
  EXPECT_THROW(ParsePerturbation("gains=abc"), AdaptError);
  EXPECT_THROW(ParsePerturbation("gains=2x"), AdaptError);
  EXPECT_THROW(ParsePerturbation("payload=-1"), AdaptError);
  EXPECT_THROW(ParsePerturbation("latency=1.5"), AdaptError);
}

TEST(PerturbationTest, EachChangesTheSimulatedRobotAsNamed) {
  PlanScene scene("franka", collect::RandomizationConfig::All(collect::Level::kNone), 32, 3);
  const Snapshot nominal = Read(scene, {});
  const mjModel* m = scene.runner().world().model();

  const Snapshot payload = Read(scene, ParsePerturbation("payload=1.5"));
  for (size_t b = 0; b < nominal.mass.size(); ++b) {
    EXPECT_NEAR(payload.mass[b], nominal.mass[b] + (static_cast<int>(b) == nominal.ee_body ? 1.5 : 0.0), 1e-12) << "body " << b;
  }
  const Snapshot gains = Read(scene, ParsePerturbation("gains"));
  for (size_t a = 0; a < nominal.gain.size(); ++a) EXPECT_NEAR(gains.gain[a], 0.5 * nominal.gain[a], 1e-12);
  ASSERT_FALSE(nominal.gain.empty());
  const Snapshot damping = Read(scene, ParsePerturbation("damping"));
  int damped = 0;
  for (size_t d = 0; d < nominal.damping.size(); ++d) {
    if (nominal.damping[d] == 0) continue;
    EXPECT_NEAR(damping.damping[d], 3 * nominal.damping[d], 1e-12);
    ++damped;
  }
  EXPECT_GT(damped, 0);
  // link: one link (the segment with the largest offset to a child) 10 % longer; no other offset moved.
  const Snapshot link = Read(scene, ParsePerturbation("link"));
  const int segment = scene.runner().randomizer().segments()[scene.runner().randomizer().LongestSegment()];
  int stretched = 0;
  for (int b = 1; b < m->nbody; ++b) {
    const double ratio = std::hypot(link.body_pos[3 * b], link.body_pos[3 * b + 1], link.body_pos[3 * b + 2]) /
                         std::max(1e-12, std::hypot(nominal.body_pos[3 * b], nominal.body_pos[3 * b + 1], nominal.body_pos[3 * b + 2]));
    if (m->body_parentid[b] == segment) {
      EXPECT_NEAR(ratio, 1.1, 1e-9) << "body " << b;
      ++stretched;
    } else if (nominal.body_pos[3 * b] != 0 || nominal.body_pos[3 * b + 1] != 0 || nominal.body_pos[3 * b + 2] != 0) {
      EXPECT_NEAR(ratio, 1.0, 1e-12) << "body " << b;
    }
  }
  EXPECT_GE(stretched, 1);
  // camera: turned where it stands by the angle given.
  const Snapshot camera = Read(scene, ParsePerturbation("camera=5"));
  ASSERT_EQ(camera.cameras.size(), nominal.cameras.size());
  for (size_t c = 0; c < nominal.cameras.size(); ++c) {
    EXPECT_EQ(camera.cameras[c].position, nominal.cameras[c].position);
    const auto& a = nominal.cameras[c];
    const auto& b = camera.cameras[c];
    const double before = std::atan2(a.target[1] - a.position[1], a.target[0] - a.position[0]);
    const double after = std::atan2(b.target[1] - b.position[1], b.target[0] - b.position[0]);
    EXPECT_NEAR((after - before) * 180 / M_PI, 5.0, 1e-9);
  }
  // Values equal to the nominal ones leave the model as drawn.
  for (const char* zero : {"payload=0", "gains=1", "damping=1", "link=1", "camera=0", "latency=0"}) {
    const Snapshot s = Read(scene, ParsePerturbation(zero));
    EXPECT_EQ(s.mass, nominal.mass) << zero;
    EXPECT_EQ(s.damping, nominal.damping) << zero;
    EXPECT_EQ(s.gain, nominal.gain) << zero;
    EXPECT_EQ(s.body_pos, nominal.body_pos) << zero;
  }
}

TEST(PerturbationTest, LatencyAppliesEachActionOneControlStepLate) {
  PlanScene scene("franka", collect::RandomizationConfig::All(collect::Level::kNone), 32, 3);
  const std::vector<double> up = scene.FullAction({0, 0, 1});
  auto ee_after = [&](const Perturbation& p, const std::vector<std::vector<double>>& actions) {
    scene.set_perturbation(p);
    scene.Reset(0, PlanTask::kReach);
    for (const auto& a : actions) scene.Act(a);
    return scene.Ee();
  };
  const std::vector<double> still = scene.FullAction({0, 0, 0});
  const auto nominal_one = ee_after({}, {up});
  const auto late_one = ee_after(ParsePerturbation("latency"), {up});
  const auto nominal_still = ee_after({}, {still});
  // One step late: after one "up" the hand has not risen (it held still), after "up, still" it has
  // done what the nominal robot did after "still, up".
  EXPECT_GT(nominal_one[2] - nominal_still[2], 1e-3);
  EXPECT_NEAR(late_one[2], nominal_still[2], 1e-9);
  const auto nominal_shifted = ee_after({}, {still, up});
  const auto late_two = ee_after(ParsePerturbation("latency"), {up, still});
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(late_two[k], nominal_shifted[k], 1e-9);
  // The transitions record the actions as sent.
  ASSERT_EQ(scene.transitions().size(), 2u);
  EXPECT_EQ(scene.transitions()[0].action, up);
  EXPECT_EQ(scene.transitions()[1].action, still);
}

// A tiny model whose predictor is not copy-last (its output layer drawn at random).
WorldModel Trained(const EmbodimentSpec& spec, int context = 2) {
  PredictorConfig config = tiny::SmallPredictor(2);
  config.context = context;
  WorldModel model = tiny::Untrained(config, spec);
  torch::NoGradGuard no_grad;
  for (auto& p : model.trunk()->out->parameters()) p.normal_(0, 0.5);
  model.Train(false);
  return model;
}

std::vector<torch::Tensor> Copy(const std::vector<torch::Tensor>& v) {
  std::vector<torch::Tensor> out;
  for (const auto& t : v) out.push_back(t.detach().clone());
  return out;
}
double MaxChange(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

TEST(OnlineAdapterTest, MovesThePerRobotPartsNotTheTrunkAndRestores) {
  PlanScene probe("franka", collect::RandomizationConfig::All(collect::Level::kNone), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  WorldModel model = Trained(spec);
  const auto trunk = Copy(model.TrunkParameters()), own = Copy(model.PredictorParameters("franka", true));
  const auto mlp = Copy(model.DynamicsParameters("franka"));
  const auto std0 = model.normalizer("franka").delta_std.clone(), mean0 = model.normalizer("franka").delta_mean.clone();
  const auto correction = [&] { return std::vector<torch::Tensor>{model.normalizer("franka").delta_std, model.normalizer("franka").delta_mean}; };
  torch::manual_seed(7);
  const int frames = 6, p = spec.proprio_dim(), a = spec.action_dim;
  const auto latents = torch::randn({frames, 1, 16}), proprio = torch::randn({frames, p}), actions = torch::randn({frames - 1, 2 * a});
  const auto camera = torch::randn({12});
  const auto dp = torch::randn({8, p}), da = torch::randn({8, a}), dn = torch::randn({8, p});
  {
    OnlineAdapter adapter(model, "franka", OnlineAdaptOptions{true, 4, 0.05, 8});
    const double first = adapter.Step(latents, proprio, actions, camera, dp, da, dn, 2);
    EXPECT_TRUE(std::isfinite(first));
    EXPECT_GT(MaxChange(Copy(model.PredictorParameters("franka", true)), own), 1e-4);  // the adapters moved
    EXPECT_GT(MaxChange(correction(), {std0, mean0}), 1e-6);                           // and the dynamics' correction
    EXPECT_EQ(MaxChange(Copy(model.TrunkParameters()), trunk), 0.0);                   // not the trunk
    EXPECT_EQ(MaxChange(Copy(model.DynamicsParameters("franka")), mlp), 0.0);          // nor the dynamics MLP
    EXPECT_FALSE(model.normalizer("franka").delta_std.requires_grad());                // usable without a graph
    for (const auto& t : model.TrunkParameters()) EXPECT_TRUE(t.requires_grad());      // left trainable as it was
    // Learning from the same window again lowers its loss.
    const double later = adapter.Step(latents, proprio, actions, camera, dp, da, dn, 2);
    EXPECT_LT(later, first);
    // One frame: nothing to learn from.
    EXPECT_TRUE(std::isnan(adapter.Step(latents.slice(0, 0, 1), proprio.slice(0, 0, 1), actions.slice(0, 0, 0), camera, {}, {}, {}, 2)));
    adapter.Reset();
    EXPECT_EQ(MaxChange(Copy(model.PredictorParameters("franka", true)), own), 0.0);
    EXPECT_EQ(MaxChange(correction(), {std0, mean0}), 0.0);
    adapter.Step(latents, proprio, actions, camera, dp, da, dn, 2);
  }
  EXPECT_EQ(MaxChange(Copy(model.PredictorParameters("franka", true)), own), 0.0);  // restored when it goes
  EXPECT_EQ(MaxChange(correction(), {std0, mean0}), 0.0);
  {  // the correction alone with no control steps to learn from: nothing ran (NaN, not a loss of 0), nothing moved
    OnlineAdapter dynamics_only(model, "franka", OnlineAdaptOptions{true, 4, 0.05, 8, "dynamics"});
    EXPECT_TRUE(std::isnan(dynamics_only.Step(latents, proprio, actions, camera, {}, {}, {}, 2)));
    EXPECT_EQ(MaxChange(correction(), {std0, mean0}), 0.0);
    for (const auto& t : model.TrunkParameters()) EXPECT_TRUE(t.requires_grad());
  }
  EXPECT_THROW(OnlineAdapter(model, "ur5", {}), AdaptError);
}

TEST(OnlineAdapterTest, AWorldTheModelPredictsLeavesItsPredictions) {
  // A perturbation of zero: the robot does what the model predicts (its frames and proprio are the
  // model's own predictions), so adaptation leaves the predictions within float tolerance. A model
  // of context 1, so that every window predicts each frame from what generated it.
  PlanScene probe("franka", collect::RandomizationConfig::All(collect::Level::kNone), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  WorldModel model = Trained(spec, 1);
  torch::NoGradGuard no_grad;
  torch::manual_seed(8);
  const int p = spec.proprio_dim(), a = spec.action_dim, frames = 5;
  const auto camera = torch::randn({1, 12});
  const auto actions = torch::randn({frames - 1, 2 * a}) * 0.5;
  std::vector<torch::Tensor> z = {torch::randn({1, 16})}, q = {torch::randn({p}) * 0.1};
  std::vector<float> dp, da, dn;
  for (int t = 1; t < frames; ++t) {  // each frame predicted from the one before it
    const int c = 1;
    const auto zs = torch::stack(std::vector<torch::Tensor>(z.end() - c, z.end())).unsqueeze(0);
    const auto qs = torch::stack(std::vector<torch::Tensor>(q.end() - c, q.end())).unsqueeze(0);
    z.push_back(model.Predict("franka", zs, qs, actions.slice(0, t - c, t).unsqueeze(0), camera).select(1, -1)[0]);
    auto next = q.back().unsqueeze(0);
    for (int j = 0; j < 2; ++j) {
      const auto act = actions[t - 1].reshape({2, a})[j].unsqueeze(0);
      const auto after = model.StepDynamics("franka", next, act);
      for (int i = 0; i < p; ++i) dp.push_back(next[0][i].item<float>()), dn.push_back(after[0][i].item<float>());
      for (int i = 0; i < a; ++i) da.push_back(act[0][i].item<float>());
      next = after;
    }
    q.push_back(next[0]);
  }
  const auto latents = torch::stack(z), proprio = torch::stack(q);
  const auto before =
      model.Predict("franka", latents.slice(0, 1, 2).unsqueeze(0), proprio.slice(0, 1, 2).unsqueeze(0), actions.slice(0, 1, 2).unsqueeze(0), camera);
  const auto own = Copy(model.Parameters("franka", true));
  OnlineAdapter adapter(model, "franka", OnlineAdaptOptions{true, 4, 0.05, 8});
  torch::AutoGradMode grad(true);
  const int64_t m = static_cast<int64_t>(da.size()) / a;
  const double loss = adapter.Step(latents, proprio, actions, camera[0], torch::tensor(dp).reshape({m, p}), torch::tensor(da).reshape({m, a}),
                                   torch::tensor(dn).reshape({m, p}), 1);
  EXPECT_LT(loss, 1e-8);
  const auto after =
      model.Predict("franka", latents.slice(0, 1, 2).unsqueeze(0), proprio.slice(0, 1, 2).unsqueeze(0), actions.slice(0, 1, 2).unsqueeze(0), camera);
  EXPECT_LT((after - before).abs().max().item<double>(), 1e-5);
  EXPECT_LT(MaxChange(Copy(model.Parameters("franka", true)), own), 1e-5);
}

}  // namespace
}  // namespace embody::adapt

namespace embody::adapt {
namespace {

TEST(PlanRunTest, PerturbedAndAdaptedRunsAreStoredBesideTheNominalOneAndTheModelIsRestored) {
  PlanScene probe("franka", collect::RandomizationConfig::All(collect::Level::kLight), 32, 5);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  WorldModel model = Trained(spec);
  const auto own = Copy(model.Parameters("franka", true));
  FrozenEncoder encoder = FrozenEncoder::Random({32, 8, 16, "vector", 32}, 4);
  PlanRunOptions o;
  o.episodes = 1;
  o.seed = 5;
  o.cem = {16, 2, 4, 2, 0.6, 0.05, 0.2};
  o.mpc.max_steps = 3;
  o.mpc.stop_at_success = false;
  o.baselines = false;
  o.oracle = "none";
  o.replay_episodes = 1;
  const auto plain = RunPlanning(model, encoder.hash(), encoder, o);
  EXPECT_EQ(plain["perturbation"]["name"], "none");
  EXPECT_EQ(plain["online_adapt"], false);
  EXPECT_FALSE(plain.contains("baselines"));
  EXPECT_EQ(plain["per_episode"][0]["model"]["latent_error"].size(), 2u);  // steps 1 and 2 foreseen from the step before
  EXPECT_TRUE(plain["model_error"]["latent_over_copy"].is_number());

  o.perturbation = ParsePerturbation("gains");
  o.online.enabled = true;
  std::vector<PlanTrace> traces;
  const auto r = RunPlanning(model, encoder.hash(), encoder, o, {}, &traces);
  EXPECT_EQ(r["perturbation"]["name"], "gains");
  EXPECT_EQ(r["perturbation"]["value"], 0.5);
  EXPECT_EQ(r["online_adapt"], true);
  EXPECT_TRUE(r["baselines"]["nominal"]["success_rate"].is_number());
  EXPECT_TRUE(r["baselines"]["frozen"]["model_error"]["latent_over_copy"].is_number());
  for (const char* run : {"model", "frozen", "nominal"}) EXPECT_EQ(r["per_episode"][0][run]["steps"], 3) << run;
  // The nominal run is the plain run of the same episode (same scene, same draws, no adaptation).
  EXPECT_EQ(r["per_episode"][0]["nominal"], plain["per_episode"][0]["model"]);
  ASSERT_EQ(traces.size(), 1u);
  EXPECT_EQ(traces[0].frozen_errors.latent.size(), 2u);
  EXPECT_EQ(MaxChange(Copy(model.Parameters("franka", true)), own), 0.0);  // the trained model back after every episode
}

}  // namespace
}  // namespace embody::adapt
