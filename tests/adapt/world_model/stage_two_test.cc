// Tests for stage two (adapt/world_model/world_model.cc, adapt/world_model/stage_two.cc): real LibTorch training on tiny
// real datasets and known systems.
#include "adapt/world_model/stage_two.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/plot.h"
#include "adapt/encoder/jepa.h"
#include "adapt/encoder/latent_cache.h"
#include "adapt/world_model/decoder_training.h"
#include "adapt/world_model/export.h"
#include "adapt/world_model/imagine.h"
#include "collect/collector.h"
#include "collect/hdf5_util.h"
#include "sim/image_io.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

EmbodimentSpec ArmSpec(const std::string& name = "arm", int joints = 3) { return {name, joints, 2, 7, "dx,dy,dz,drx,dry,drz,gripper"}; }

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Normalizer Identity(int p) { return tiny::IdentityNormalizer(p); }

PredictorConfig TinyPredictor() {
  PredictorConfig c;
  c.latent_dim = 8;
  c.tokens = 4;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.context = 3;
  c.frame_skip = 2;
  return c;
}

// A model whose output projection is not zero, so predictions depend on everything.
WorldModel RandomModel(std::uint64_t seed) {
  torch::manual_seed(seed);
  WorldModel m(TinyPredictor());
  m.AddEmbodiment(ArmSpec(), Identity(ArmSpec().proprio_dim()));
  torch::NoGradGuard no_grad;
  for (auto& p : m.Parameters("arm", false)) p.normal_(0, 0.3);
  m.Train(false);
  return m;
}

struct Inputs {
  torch::Tensor latents, proprio, actions, camera;
};
Inputs RandomInputs(int b, int t, std::uint64_t seed) {
  torch::manual_seed(seed);
  const int p = ArmSpec().proprio_dim();
  // Model-step actions: the 7-D actions of the model step's 2 control steps, concatenated.
  return {torch::randn({b, t, 4, 8}), torch::randn({b, t, p}), torch::rand({b, t, 14}) * 2 - 1, torch::randn({b, 12})};
}

// Tests that an untrained predictor is exactly the copy-last-frame baseline (zero-initialized residual).
TEST(WorldModelTest, UntrainedPredictorIsCopyLast) {
  WorldModel m(TinyPredictor());
  m.AddEmbodiment(ArmSpec(), Identity(ArmSpec().proprio_dim()));
  const Inputs in = RandomInputs(2, 3, 1);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(in.latents, m.Predict("arm", in.latents, in.proprio, in.actions, in.camera)));
}

// Tests the block-causal mask: the prediction at frame t does not change when later frames change,
// and does change when frame t's action changes.
TEST(WorldModelTest, PredictorIsCausalInTime) {
  WorldModel m = RandomModel(2);
  Inputs in = RandomInputs(2, 3, 3);
  torch::NoGradGuard no_grad;
  const auto full = m.Predict("arm", in.latents, in.proprio, in.actions, in.camera);
  for (int t = 0; t < 3; ++t) {
    const auto prefix = m.Predict("arm", in.latents.slice(1, 0, t + 1), in.proprio.slice(1, 0, t + 1), in.actions.slice(1, 0, t + 1), in.camera);
    EXPECT_TRUE(torch::allclose(full.slice(1, 0, t + 1), prefix, 1e-5, 1e-5)) << "frame " << t;
  }
  Inputs changed = in;
  changed.latents = in.latents.clone();
  changed.latents.select(1, 2).add_(1.0);
  changed.actions = in.actions.clone();
  changed.actions.select(1, 1).mul_(-1);
  const auto other = m.Predict("arm", changed.latents, changed.proprio, changed.actions, changed.camera);
  EXPECT_TRUE(torch::allclose(full.select(1, 0), other.select(1, 0), 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(full.select(1, 1), other.select(1, 1), 1e-3, 1e-3));
}

// Tests that a k-step open-loop rollout equals k chained one-step predictions, each fed the previous
// prediction and the dynamics model's proprio (stepped once per control step of the model step, with
// that step's action), with the window sliding past the predictor's context.
TEST(WorldModelTest, RolloutEqualsChainedOneStepPredictions) {
  WorldModel m = RandomModel(4);
  const Inputs in = RandomInputs(2, 7, 5);
  const int k = 2, h = 5;
  torch::NoGradGuard no_grad;
  torch::Tensor prop_pred;
  const auto rolled = m.Rollout("arm", in.latents.slice(1, 0, k), in.proprio.slice(1, 0, k), in.actions, in.camera, h, &prop_pred);
  ASSERT_EQ((std::vector<int64_t>{2, h, 4, 8}), rolled.sizes().vec());
  auto lat = in.latents.slice(1, 0, k), prop = in.proprio.slice(1, 0, k);
  for (int step = 0; step < h; ++step) {
    const int64_t t = lat.size(1), start = std::max<int64_t>(0, t - 3);
    const auto next = m.Predict("arm", lat.slice(1, start), prop.slice(1, start), in.actions.slice(1, start, t), in.camera).select(1, -1);
    const auto step_actions = in.actions.select(1, t - 1);
    const auto next_prop =
        m.StepDynamics("arm", m.StepDynamics("arm", prop.select(1, t - 1), step_actions.slice(1, 0, 7)), step_actions.slice(1, 7, 14));
    EXPECT_TRUE(torch::allclose(rolled.select(1, step), next, 1e-5, 1e-5)) << step;
    EXPECT_TRUE(torch::allclose(prop_pred.select(1, step), next_prop, 1e-5, 1e-5)) << step;
    lat = torch::cat({lat, next.unsqueeze(1)}, 1);
    prop = torch::cat({prop, next_prop.unsqueeze(1)}, 1);
  }
}

// Tests that `adapt --export` writes a TorchScript module that Debian's python3-torch loads and that
// reproduces the C++ model's predict, dynamics step and rollout (with and without a gripper, with
// non-trivial normalizers baked in), and that the export's own check refuses a wrong module.
TEST(WorldModelTest, TorchScriptExportReproducesTheModelInPython) {
  const fs::path dir = fs::temp_directory_path() / ("embody_export_" + std::to_string(getpid()));
  fs::create_directories(dir);
  torch::manual_seed(11);
  WorldModel m(TinyPredictor());
  EmbodimentSpec bare = ArmSpec("bare", 2);
  bare.gripper = 0;
  for (const EmbodimentSpec& spec : {ArmSpec(), bare}) {
    const int p = spec.proprio_dim();
    m.AddEmbodiment(spec, {torch::randn({p}), torch::rand({p}) + 0.5, torch::randn({p}) * 0.1, torch::rand({p}) + 0.2});
  }
  {
    torch::NoGradGuard no_grad;
    for (const std::string emb : {"arm", "bare"}) {
      for (auto& q : m.Parameters(emb, false)) q.normal_(0, 0.3);
    }
  }
  m.Train(false);
  for (const EmbodimentSpec& spec : {ArmSpec(), bare}) {
    const fs::path module = dir / (spec.name + ".ts"), io = dir / (spec.name + ".io.pt");
    EXPECT_LE(ExportWorldModel(m, spec.name, "hash-of-the-encoder", module), 1e-5);
    torch::manual_seed(12);
    const int b = 2, p = spec.proprio_dim(), a = spec.action_dim * 2, h = 4;
    torch::NoGradGuard no_grad;
    const auto lat = torch::randn({b, 3, 4, 8}), prop = torch::randn({b, 3, p}), act = torch::rand({b, 3, a}) * 2 - 1;
    const auto cam = torch::randn({b, 12}), actions = torch::rand({b, 2 + h - 1, a}) * 2 - 1;
    const auto pred = m.Predict(spec.name, lat, prop, act, cam);
    const auto p0 = prop.select(1, 0), a0 = act.select(1, 0).slice(-1, 0, spec.action_dim);
    const auto step = m.StepDynamics(spec.name, p0, a0);
    torch::Tensor rolled_prop;
    const auto rolled = m.Rollout(spec.name, lat.slice(1, 0, 2), prop.slice(1, 0, 2), actions, cam, h, &rolled_prop);
    c10::impl::GenericList list(c10::AnyType::get());
    for (const auto& t : {lat, prop, act, cam, pred, p0, a0, step, lat.slice(1, 0, 2).contiguous(), prop.slice(1, 0, 2).contiguous(), actions,
                          torch::tensor(h), rolled, rolled_prop}) {
      list.push_back(t);
    }
    const std::vector<char> bytes = torch::pickle_save(c10::IValue(list));
    std::ofstream(io, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const std::string command = "/usr/bin/python3 " EMBODY_TESTS_DIR "/adapt/check_export.py " + module.string() + " " + io.string() + " " +
                                spec.name + " > " + (dir / "check.log").string() + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << ReadFile(dir / "check.log");
  }
  EXPECT_THROW(ExportWorldModel(m, "ur5", "h", dir / "x.ts"), AdaptError);  // an embodiment the model does not know
  fs::remove_all(dir);
}

// Tests that the dynamics model learns a known linear system x' = x + A x + B u to within a few
// percent of the change it predicts, through StepDynamics's (de)normalization.
TEST(WorldModelTest, DynamicsLearnsKnownLinearSystem) {
  torch::manual_seed(6);
  const EmbodimentSpec spec = ArmSpec("lin", 1);  // P = 2 + 7 + 2 = 11
  const int p = spec.proprio_dim();
  const auto a = torch::randn({p, p}) * 0.05, b = torch::randn({7, p}) * 0.2;
  auto next = [&](const torch::Tensor& x, const torch::Tensor& u) { return x + x.mm(a) + u.mm(b); };
  const auto x = torch::randn({4096, p}) * 2 + 1, u = torch::rand({4096, 7}) * 2 - 1;
  const auto d = next(x, u) - x;
  WorldModel m(TinyPredictor());
  m.AddEmbodiment(spec, {x.mean(0), x.std(0), d.mean(0), d.std(0)});
  torch::optim::Adam opt(m.Parameters("lin", true), torch::optim::AdamOptions(3e-3));
  const Normalizer& n = m.normalizer("lin");
  for (int step = 0; step < 600; ++step) {
    const auto idx = torch::randint(0, 4096, {128}, torch::kLong);
    const auto xb = x.index_select(0, idx), ub = u.index_select(0, idx);
    const auto target = (next(xb, ub) - xb - n.delta_mean) / n.delta_std;
    auto loss = (m.DynamicsDelta("lin", n.Normalize(xb), ub) - target).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard no_grad;
  const auto xt = torch::randn({512, p}) * 2 + 1, ut = torch::rand({512, 7}) * 2 - 1;
  const auto truth = next(xt, ut), pred = m.StepDynamics("lin", xt, ut);
  const double rel = ((pred - truth).norm() / (truth - xt).norm()).item<double>();
  EXPECT_LT(rel, 0.05);
}

// Tests `--precision bf16` (autocast to bfloat16 around the forward passes; on the CPU here, the same
// code path as on a GPU): the losses are float32, close to the float32 run's but not equal to them (the
// products did run in bfloat16), the gradients reach the float32 weights, and autocast is off again
// afterwards.
TEST(WorldModelTest, Bf16AutocastLossesAreCloseToFloat32) {
  WorldModel m = RandomModel(12);
  const Inputs in = RandomInputs(4, 4, 13);
  const int p = ArmSpec().proprio_dim();
  StageTwoData::Window w{in.latents, in.proprio, in.actions, in.camera, torch::randn({16, p}), torch::rand({16, 7}) * 2 - 1, torch::randn({16, p})};
  const AdaptLosses full = StageTwoLosses(m, "arm", w, 3, 2);
  const AdaptLosses half = StageTwoLosses(m, "arm", w, 3, 2, nullptr, /*bf16=*/true);
  for (const auto& [a, b] : {std::pair{full.teacher, half.teacher}, {full.rollout, half.rollout}, {full.dynamics, half.dynamics}}) {
    EXPECT_EQ(torch::kFloat, b.scalar_type());
    const double x = a.item<double>(), y = b.item<double>();
    EXPECT_TRUE(std::isfinite(y));
    EXPECT_NEAR(x, y, 0.05 * std::abs(x)) << "bf16 loss far from the float32 one";
    EXPECT_NE(x, y) << "bf16 changed nothing: autocast did not take effect";
  }
  half.total().backward();
  int with_grad = 0;
  for (const auto& param : m.Parameters("arm", false)) {
    EXPECT_EQ(torch::kFloat, param.scalar_type());
    if (!param.grad().defined() || param.grad().abs().sum().item<double>() == 0) continue;
    ++with_grad;
    EXPECT_EQ(torch::kFloat, param.grad().scalar_type());
  }
  EXPECT_GT(with_grad, 0);
  torch::NoGradGuard no_grad;  // autocast is off again: a plain forward pass is float32 and equal to the first
  EXPECT_EQ(torch::kFloat,
            m.Predict("arm", in.latents.slice(1, 0, 3), in.proprio.slice(1, 0, 3), in.actions.slice(1, 0, 3), in.camera).scalar_type());
  EXPECT_EQ(full.teacher.item<double>(), StageTwoLosses(m, "arm", w, 3, 2).teacher.item<double>());
}

// Tests that a saved model loads with identical predictions and dynamics, and that embodiments,
// action sizes and latent sizes the model does not know are refused clearly.
TEST(WorldModelTest, CheckpointRoundTripAndBadInputs) {
  WorldModel m = RandomModel(7);
  const Inputs in = RandomInputs(2, 3, 8);
  const fs::path file = fs::temp_directory_path() / ("embody_wm_" + std::to_string(getpid()) + ".pt");
  SaveWorldModel(m, "hash123", {{"step", 5}}, file);
  std::string hash;
  nlohmann::json info;
  WorldModel loaded = LoadWorldModel(file, &hash, &info);
  loaded.Train(false);
  EXPECT_EQ("hash123", hash);
  EXPECT_EQ(5, info["step"]);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(m.Predict("arm", in.latents, in.proprio, in.actions, in.camera),
                           loaded.Predict("arm", in.latents, in.proprio, in.actions, in.camera)));
  const auto control_action = in.actions.select(1, 0).slice(1, 0, 7);
  EXPECT_TRUE(torch::equal(m.StepDynamics("arm", in.proprio.select(1, 0), control_action),
                           loaded.StepDynamics("arm", in.proprio.select(1, 0), control_action)));
  fs::remove(file);

  try {
    loaded.Predict("ur5", in.latents, in.proprio, in.actions, in.camera);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no embodiment ur5 (it knows: arm)"));
  }
  try {
    loaded.Predict("arm", in.latents, in.proprio, in.actions.slice(2, 0, 7), in.camera);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("actions have 7 dimensions; embodiment arm has 7 per control step and the model 2 control steps per model step"));
  }
  try {
    loaded.Predict("arm", torch::zeros({2, 3, 4, 16}), in.proprio, in.actions, in.camera);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another encoder?"));
  }
  EXPECT_THROW(loaded.AddEmbodiment(ArmSpec("arm", 4), Identity(ArmSpec("arm", 4).proprio_dim())), AdaptError);
  const fs::path junk = fs::temp_directory_path() / ("embody_junk_" + std::to_string(getpid()) + ".pt");
  std::ofstream(junk) << "not a model";
  try {
    LoadWorldModel(junk);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("is not a stage-two model"));
  }
  fs::remove(junk);
  EXPECT_THROW(LoadWorldModel("/nonexistent/model"), AdaptError);
}

// Tests that transfer copies the trunk and, between robots with the same action space, the action
// embedding, but never the per-robot joint embedding.
TEST(WorldModelTest, InitFromCopiesTrunkAndSharedActionEmbedding) {
  WorldModel from = RandomModel(9);
  WorldModel to(TinyPredictor());
  to.AddEmbodiment(ArmSpec("other", 5), Identity(ArmSpec("other", 5).proprio_dim()));
  const auto copied = to.InitFrom(from, "other");
  EXPECT_EQ((std::vector<std::string>{"trunk", "action embedding of arm"}), copied);
  // The trunk's tensors (the predictor's parameters that a frozen trunk leaves out) now equal the source's.
  const auto to_all = to.PredictorParameters("other", false), from_all = from.PredictorParameters("arm", false);
  const size_t trunk = to_all.size() - to.PredictorParameters("other", true).size();
  ASSERT_GT(trunk, 0u);
  for (size_t i = 0; i < trunk; ++i) EXPECT_TRUE(torch::equal(to_all[i], from_all[i])) << "trunk tensor " << i;
  // The action embedding (the only (width x 2*7) weight of an adapter) is copied; the joint one cannot be.
  auto action_weight = [](const std::vector<torch::Tensor>& params, size_t first) {
    for (size_t i = first; i < params.size(); ++i) {
      if (params[i].dim() == 2 && params[i].size(1) == 14) return params[i];
    }
    return torch::Tensor();
  };
  EXPECT_TRUE(torch::equal(action_weight(to_all, trunk), action_weight(from_all, trunk)));
  PredictorConfig bigger = TinyPredictor();
  bigger.dim = 32;
  WorldModel wrong(bigger);
  wrong.AddEmbodiment(ArmSpec("other", 5), Identity(ArmSpec("other", 5).proprio_dim()));
  EXPECT_THROW(wrong.InitFrom(from, "other"), AdaptError);
  PredictorConfig other_skip = TinyPredictor();
  other_skip.frame_skip = 4;
  WorldModel skip(other_skip);
  skip.AddEmbodiment(ArmSpec("other", 5), Identity(ArmSpec("other", 5).proprio_dim()));
  EXPECT_THROW(skip.InitFrom(from, "other"), AdaptError);  // another model step
}

// Tests that a model saved before model steps existed (no frame_skip in its config) loads with a
// frame skip of 1, and that a config with one keeps it.
TEST(WorldModelTest, ConfigWithoutFrameSkipLoadsAsOneControlStep) {
  nlohmann::json old = TinyPredictor().ToJson();
  old.erase("frame_skip");
  old.erase("cameras");  // older still: one camera, camera0
  EXPECT_EQ(1, PredictorConfig::FromJson(old).frame_skip);
  EXPECT_EQ(PredictorConfig::FromJson(old).cameras, std::vector<std::string>{"camera0"});
  EXPECT_EQ(2, PredictorConfig::FromJson(TinyPredictor().ToJson()).frame_skip);
}

// Tests that plots are written with labels and lines.
TEST(PlotTest, WritesNonUniformPng) {
  const fs::path file = fs::temp_directory_path() / ("embody_plot_" + std::to_string(getpid()) + ".png");
  WriteLinePlot(file, {{"a", {1, 2, 3}, {0.5, 0.2, 0.1}, {200, 0, 0}}}, {"title", "x", "y", 320, 200});
  const sim::Image im = sim::ReadPng(file);
  EXPECT_EQ(320, im.width);
  EXPECT_EQ(200, im.height);
  int red = 0;
  for (size_t i = 0; i < im.rgb.size(); i += 3) red += im.rgb[i] == 200 && im.rgb[i + 1] == 0;
  EXPECT_GT(red, 100);
  fs::remove(file);
}

// Tests that an axis of whole model steps gets whole-number ticks (was "0.5 step", "1.5 step"),
// and that a continuous axis keeps its fractional ticks.
// The legend never covers a curve (it has a margin of its own), and a curve lying exactly on an
// earlier one leaves both colours visible (the plan's model curve under the oracle's, issue #49).
TEST(PlotTest, LegendBesideThePlotAndOverlappingCurvesBothVisible) {
  const std::vector<double> x = {0, 1, 2, 3, 4}, y = {4, 3, 2, 1, 0.5};
  PlotLayout layout;
  const sim::Image im = LinePlot({{"oracle", x, y, {200, 0, 0}}, {"model, the long label", x, y, {0, 0, 200}}}, {"t", "x", "y", 480, 300}, &layout);
  const auto [px, py, pw, ph] = layout.plot;
  const auto [lx, ly, lw, lh] = layout.legend;
  EXPECT_GE(lx, px + pw) << "the legend overlaps the plotting box";
  EXPECT_LE(lx + lw, im.width);
  EXPECT_GT(lh, 0);
  int red = 0, blue = 0;
  for (int r = py; r < py + ph; ++r) {
    for (int c = px; c < px + pw; ++c) {
      const std::uint8_t* p = &im.rgb[3 * (static_cast<size_t>(r) * im.width + c)];
      red += p[0] == 200 && p[1] == 0 && p[2] == 0;
      blue += p[0] == 0 && p[1] == 0 && p[2] == 200;
    }
  }
  EXPECT_GT(red, 100) << "the first curve is hidden under the second";
  EXPECT_GT(blue, 100);
}

TEST(PlotTest, IntegerAxisTicksAtWholeNumbers) {
  EXPECT_EQ(AxisTicks(0, 3, 8, /*integer=*/true), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(AxisTicks(0, 3, 8, /*integer=*/false), (std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5, 3}));
  EXPECT_EQ(AxisTicks(0, 1, 4, /*integer=*/true), (std::vector<double>{0, 1}));
  EXPECT_EQ(AxisTicks(0, 40, 4, /*integer=*/true), (std::vector<double>{0, 10, 20, 30, 40}));
  for (double t : AxisTicks(0.3, 17.2, 8, true)) EXPECT_EQ(t, std::round(t));
}

// A tiny real dataset, a briefly pretrained encoder and its latent cache.
class AdaptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = new fs::path(fs::temp_directory_path() / ("embody_stage2_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    const fs::path data = *dir_ / "franka.h5";
    tiny::CollectFranka(data, 40, 20, 2);
    JepaConfig j = tiny::Jepa();
    j.steps = 30;
    Pretrainer(j, VideoData({data}), *dir_ / "enc.pt", false).Train(false);
    FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "enc.pt");
    cache_ = new fs::path(EnsureLatentCache(encoder, data, "camera0").path);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete cache_;
  }
  static AdaptConfig Tiny() {
    AdaptConfig c;
    c.predictor.latent_dim = 16;
    c.predictor.tokens = 16;
    c.predictor.dim = 32;
    c.predictor.depth = 2;
    c.predictor.heads = 2;
    c.predictor.context = 3;
    c.predictor.frame_skip = 2;
    c.batch = 8;
    c.steps = 150;
    c.lr = 2e-3;
    c.eval_every = 50;
    c.patience = 10;
    c.threads = 2;
    c.seed = 1;
    return c;
  }
  static fs::path *dir_, *cache_;
};
fs::path* AdaptTest::dir_ = nullptr;
fs::path* AdaptTest::cache_ = nullptr;

// Tests the whole of stage two on a tiny real dataset: training lowers the held-out latent error
// below copy-last, the dynamics model's ee error falls below its untrained value, the best model is
// saved and resuming continues from the saved step.
TEST_F(AdaptTest, TinyRunBeatsCopyLastOnHeldOutEpisodes) {
  const StageTwoData data(*dir_ / "franka.h5", *cache_);
  EXPECT_EQ("franka", data.spec().name);
  EXPECT_EQ(7, data.spec().joints);
  EXPECT_EQ(16, data.tokens());
  EXPECT_EQ(4u, data.episodes("valid").size());
  const auto w = data.Read(data.episodes("train")[0], 2, 5);
  EXPECT_EQ((std::vector<int64_t>{5, 16, 16}), w.latents.sizes().vec());
  EXPECT_EQ((std::vector<int64_t>{5, data.spec().proprio_dim()}), w.proprio.sizes().vec());

  // Model steps of 4 control steps from frame 1: frames 1, 5, 9; each row's actions are the 4
  // recorded actions that follow its frame, concatenated; the last row's run past the end as zeros.
  const auto& ep = data.episodes("train")[0];
  const auto whole = data.Read(ep, 0, ep.frames);
  const auto skip = data.Read(ep, 1, 3, 4);
  EXPECT_TRUE(torch::equal(whole.latents.index_select(0, torch::tensor({1, 5, 9})), skip.latents));
  EXPECT_TRUE(torch::equal(whole.proprio.index_select(0, torch::tensor({1, 5, 9})), skip.proprio));
  ASSERT_EQ((std::vector<int64_t>{3, 28}), skip.actions.sizes().vec());
  for (int row = 0; row < 3; ++row) {
    for (int j = 0; j < 4; ++j) {
      EXPECT_TRUE(torch::equal(whole.actions[row * 4 + 1 + j], skip.actions[row].slice(0, 7 * j, 7 * j + 7))) << row << " " << j;
    }
  }
  // The same window cut from the episode already read (what the evaluation does) is identical.
  const auto cut = StageTwoData::Strided(whole, 1, 3, 4);
  EXPECT_TRUE(torch::equal(skip.latents, cut.latents));
  EXPECT_TRUE(torch::equal(skip.proprio, cut.proprio));
  EXPECT_TRUE(torch::equal(skip.actions, cut.actions));
  EXPECT_TRUE(torch::equal(skip.camera, cut.camera));
  EXPECT_THROW(StageTwoData::Strided(whole, ep.frames - 4, 2, 4), AdaptError);
  const auto tail = data.Read(ep, ep.frames - 5, 2, 4);  // frames n-5 and n-1
  EXPECT_TRUE(torch::equal(whole.actions[ep.frames - 1], tail.actions[1].slice(0, 0, 7)));
  EXPECT_EQ(0.0, tail.actions[1].slice(0, 7).abs().sum().item<double>());
  EXPECT_THROW(data.Read(ep, ep.frames - 4, 2, 4), AdaptError);  // frame n+3 does not exist

  // Episodes are kept in memory once read (a tiny dataset fits); read from the files every time
  // (keep_bytes 0) the windows are the same.
  EXPECT_TRUE(data.keeps_episodes());
  const StageTwoData unkept(*dir_ / "franka.h5", *cache_, "camera0", 0, false, /*keep_bytes=*/0);
  EXPECT_FALSE(unkept.keeps_episodes());
  const auto again = data.Read(ep, 1, 3, 4), from_files = unkept.Read(ep, 1, 3, 4);
  for (const auto& [a, b] : {std::pair{skip.latents, again.latents},
                             {skip.latents, from_files.latents},
                             {skip.proprio, from_files.proprio},
                             {skip.actions, from_files.actions},
                             {skip.camera, from_files.camera},
                             {skip.dyn_next, from_files.dyn_next}}) {
    EXPECT_TRUE(torch::equal(a, b));
  }

  const AdaptConfig config = Tiny();
  WorldModel model(config.predictor);
  torch::manual_seed(1);
  model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
  model.SetLatentDeltaScale(data.LatentDeltaScale(config.predictor.frame_skip));  // as the adapt program does
  EXPECT_GT(model.latent_delta_scale(), 0.0);
  EXPECT_LT(model.latent_delta_scale(), 1.0);
  const EvalOptions eval{2, 0.6, 100, 200};  // 20-step episodes: 6 model steps of 2 ahead
  const nlohmann::json before = Evaluate(model, data, eval);
  EXPECT_DOUBLE_EQ(1.0, before["tasks"]["all"]["ratio"][0].get<double>());  // untrained = copy-last

  const fs::path out = *dir_ / "model";
  StageTwoTrainer trainer(config, data, std::move(model), out, /*resume=*/false);
  const TrainStats stats = trainer.Train(/*verbose=*/false);
  EXPECT_GT(stats.best_step, 0);
  EXPECT_LT(stats.best_val, stats.history.front()[2]);
  std::string hash;
  WorldModel best = LoadWorldModel(out, &hash);
  EXPECT_EQ(data.encoder_hash(), hash);
  const nlohmann::json after = Evaluate(best, data, eval);
  const auto& all = after["tasks"]["all"];
  EXPECT_LT(all["ratio"][0].get<double>(), 0.97) << after.dump();
  EXPECT_LT(all["ee_error_cm"][0].get<double>(), before["tasks"]["all"]["ee_error_cm"][0].get<double>());
  EXPECT_THAT(FormatEvalTable(after), HasSubstr("copy-last"));
  const std::string table = FormatEvalTable(after);
  EXPECT_THAT(table, HasSubstr("verdict: "));
  // A target that cannot be judged reads "n/a" in the targets line, with its reason below.
  for (const auto& [key, why] : after["not_judged"].items()) {
    const size_t at = table.find(" " + key + " ");
    ASSERT_NE(std::string::npos, at) << key;
    const std::string entry = table.substr(at, table.find(';', at) - at);
    EXPECT_EQ(!why.is_null(), entry.size() >= 3 && entry.substr(entry.size() - 3) == "n/a") << entry;
    if (!why.is_null()) {
      EXPECT_THAT(table, HasSubstr("n/a: " + why.get<std::string>()));
    }
  }
  // The summary's headline numbers are there, as numbers.
  for (const char* key : {"ee_gap_closed_1s", "ee_gap_closed_2s", "object_gap_closed_2s", "ee_floor_over_copy_1s", "latent_ratio_h1",
                          "retrieval_top1_1s", "frame_skip", "image_size"}) {
    EXPECT_TRUE(after["summary"].contains(key)) << key;
  }
  EXPECT_EQ(2, after["summary"]["frame_skip"].get<int>());
  EXPECT_EQ(32, after["summary"]["image_size"].get<int>());
  EXPECT_EQ(6, after["horizon"].get<int>());
  EXPECT_TRUE(after["summary"]["ee_floor_over_copy_1s"].is_number());
  EXPECT_DOUBLE_EQ(after["summary"]["latent_ratio_h1"].get<double>(), all["ratio"][0].get<double>());

  // Resume: same options, more steps, continues from the saved step.
  AdaptConfig more = config;
  more.steps = stats.step + 10;
  StageTwoTrainer resumed(more, data, WorldModel(config.predictor), out, /*resume=*/true);
  EXPECT_EQ(stats.step + 10, resumed.Train(false).step);
  AdaptConfig other = config;
  other.lr = 1e-2;
  EXPECT_THROW(StageTwoTrainer(other, data, WorldModel(config.predictor), out, true), AdaptError);
  EXPECT_THROW(StageTwoTrainer(config, data, WorldModel(config.predictor), out, false), AdaptError);  // would overwrite
}

// Tests --trunk-lr-scale: at 0 the trunk keeps its start while the robot's own parts learn, at 1 (the
// default) every part learns; a run recorded before the option existed reads as 1.
TEST_F(AdaptTest, TrunkLearningRateScaleKeepsTheTrunk) {
  const StageTwoData data(*dir_ / "franka.h5", *cache_);
  const auto trained = [&](double scale, const std::string& name) {
    AdaptConfig config = Tiny();
    config.steps = 20;
    config.trunk_lr_scale = scale;
    torch::manual_seed(1);
    WorldModel model(config.predictor);
    model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
    model.SetLatentDeltaScale(data.LatentDeltaScale(config.predictor.frame_skip));
    std::vector<torch::Tensor> start;
    for (const auto& p : model.Parameters(data.spec().name, false)) start.push_back(p.detach().clone());
    StageTwoTrainer trainer(config, data, std::move(model), *dir_ / name, /*resume=*/false);
    trainer.Train(false);
    const auto trunk = trainer.model().TrunkParameters().size();
    const auto now = trainer.model().Parameters(data.spec().name, false);
    bool trunk_moved = false, own_moved = false;
    for (std::size_t i = 0; i < now.size(); ++i) (i < trunk ? trunk_moved : own_moved) |= !torch::equal(start[i], now[i]);
    return std::pair{trunk_moved, own_moved};
  };
  EXPECT_EQ(std::pair(false, true), trained(0.0, "scale0"));
  EXPECT_EQ(std::pair(true, true), trained(1.0, "scale1"));
  nlohmann::json old = Tiny().ToJson();
  old.erase("trunk_lr_scale");
  EXPECT_DOUBLE_EQ(1.0, AdaptConfig::FromJson(old).trunk_lr_scale);
}

// Tests the evaluation of a robot with several sites of interest (the humanoid's two hands): the
// metrics name the dataset's sites, keep each site's read-out on its own (ee_px_*_site<i> and its gap
// closed), and the "ee" figures average them (between the sites' own values at every horizon); an
// untrained model is copy-last for every site.
TEST_F(AdaptTest, SeveralSitesAreEvaluatedEachAndAveraged) {
  const fs::path path = *dir_ / "humanoid.h5";
  tiny::CollectRobot("humanoid", path, 12, 20, 5);
  FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "enc.pt");
  const StageTwoData data(path, EnsureLatentCache(encoder, path, "camera0").path);
  const collect::Dataset ds(path);
  const auto names = nlohmann::json::parse(ds.StringAttr(ds.demos().front(), "sites"));
  ASSERT_EQ(2u, names.size());
  WorldModel model(Tiny().predictor);
  model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
  const nlohmann::json m = Evaluate(model, data, EvalOptions{2, 0.6, 100, 200});
  EXPECT_EQ(names, m["ee_sites"]);
  const auto& all = m["tasks"]["all"];
  int compared = 0;
  for (size_t h = 0; h < all["ee_px_copy"].size(); ++h) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (size_t p = 0; p < names.size(); ++p) {
      const std::string site = "_site" + std::to_string(p);
      ASSERT_TRUE(all.contains("ee_px_copy" + site) && all.contains("ee_px_imagined" + site) && all.contains("ee_px_floor" + site) &&
                  all.contains("ee_px_gap_closed" + site))
          << site;
      if (!all["ee_px_copy" + site][h].is_number()) continue;  // the site out of view in every window
      const double copy = all["ee_px_copy" + site][h].get<double>();
      EXPECT_DOUBLE_EQ(copy, all["ee_px_imagined" + site][h].get<double>()) << site << " step " << h;
      lo = std::min(lo, copy), hi = std::max(hi, copy);
    }
    if (!(lo < hi) || !all["ee_px_copy"][h].is_number()) continue;
    const double mean = all["ee_px_copy"][h].get<double>();
    EXPECT_GE(mean, lo - 1e-9) << "step " << h;
    EXPECT_LE(mean, hi + 1e-9) << "step " << h;
    ++compared;
  }
  EXPECT_GT(compared, 0);
  EXPECT_THAT(FormatEvalTable(m), HasSubstr(names[1].get<std::string>()));  // the table has a line per site
}

// Tests that the evaluation refuses held-out episodes that track different sites (its per-site
// figures and their averages would mix different hands): one episode's `sites` is rewritten.
TEST_F(AdaptTest, EvaluationRefusesEpisodesWithDifferentSites) {
  const fs::path path = *dir_ / "humanoid_sites.h5";
  tiny::CollectRobot("humanoid", path, 24, 20, 6);  // 24 episodes: 2-3 held out
  FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "enc.pt");
  std::string last;
  {
    const StageTwoData data(path, EnsureLatentCache(encoder, path, "camera0").path);
    ASSERT_GE(data.episodes("valid").size(), 2u);
    last = data.episodes("valid").back().demo;
  }
  {
    collect::h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, "cannot open " + path.string());
    const auto demo = collect::h5::OpenGroup(file, "data/" + last);
    ASSERT_GE(H5Adelete(demo, "sites"), 0);
    collect::h5::SetAttr(demo, "sites", std::string(R"(["left_hand", "head"])"));
  }
  const StageTwoData data(path, EnsureLatentCache(encoder, path, "camera0").path);
  WorldModel model(Tiny().predictor);
  model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
  try {
    Evaluate(model, data, EvalOptions{2, 0.6, 100, 200});
    FAIL() << "episodes with different sites were evaluated together";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr(last));
    EXPECT_THAT(e.what(), HasSubstr("head"));
  }
}

// Tests the viewer's torch-free Imaginer on a real model folder: an untrained model imagines exactly
// copy-last (latent error equal to copy-last's at every frame), in whole model steps, with a read-out
// and a nearest real frame per imagined frame and no decoded frames without decoder.pt; bad requests
// are refused.
TEST_F(AdaptTest, ImaginerOfAnUntrainedModelIsCopyLast) {
  const StageTwoData data(*dir_ / "franka.h5", *cache_);
  const AdaptConfig config = Tiny();
  WorldModel model(config.predictor);
  model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
  const fs::path folder = *dir_ / "imaginer_model";
  fs::create_directories(folder);
  SaveWorldModel(model, data.encoder_hash(), {{"step", 0}}, folder / "model.pt");
  auto imaginer = Imaginer::Open(folder, *dir_ / "franka.h5", *dir_ / "enc.pt");
  EXPECT_EQ(imaginer->embodiment(), "franka");
  EXPECT_EQ(imaginer->joints(), 7);
  const std::string demo = data.episodes("valid")[0].demo;
  const Imagination im = imaginer->Imagine(demo, 5, 2, 5);
  EXPECT_EQ(im.start, 5);
  EXPECT_EQ(im.frame_skip, 2);
  EXPECT_EQ(im.horizon, 6);  // 5 frames rounded up to 3 model steps of 2
  ASSERT_EQ(im.latent_l1.size(), 6u);
  for (size_t i = 0; i < im.latent_l1.size(); ++i) EXPECT_NEAR(im.latent_l1[i], im.copy_last_l1[i], 1e-6) << i;
  EXPECT_EQ(im.readout_ee_uv.size(), 6u);
  EXPECT_EQ(im.true_ee_uv.size(), 6u);
  EXPECT_EQ(im.proprio.size(), 6u);
  EXPECT_EQ(im.nearest_frame.size(), 6u);
  EXPECT_EQ(im.image_size, 32);
  EXPECT_TRUE(im.decoded.empty());
  EXPECT_THROW(imaginer->Imagine("demo_999", 5, 2, 5), AdaptError);
  EXPECT_THROW(imaginer->Imagine(demo, 0, 2, 5), AdaptError);
  EXPECT_THROW(Imaginer::Open(*dir_ / "no_model", *dir_ / "franka.h5", *dir_ / "enc.pt"), std::runtime_error);
}

// Tests that the visualization decoder learns to draw frames from frozen latents (pixel L1 falls)
// and loads back with identical output.
TEST_F(AdaptTest, DecoderLearnsFramesFromLatents) {
  const StageTwoData data(*dir_ / "franka.h5", *cache_);
  const fs::path out = *dir_ / "decoder.pt";
  const DecoderStats stats = TrainDecoder(data, 80, 1, out, false);
  EXPECT_LT(stats.last_loss, 0.7 * stats.first_loss) << stats.first_loss << " -> " << stats.last_loss;
  EXPECT_LT(stats.val_loss, stats.first_loss);
  LatentDecoder loaded = LoadDecoder(out);
  const auto latents = data.Read(data.episodes("valid")[0], 0, 3).latents;
  torch::NoGradGuard no_grad;
  const auto images = loaded->forward(latents);
  EXPECT_EQ((std::vector<int64_t>{3, 3, 32, 32}), images.sizes().vec());
  EXPECT_TRUE(torch::equal(images, LoadDecoder(out)->forward(latents)));
  EXPECT_THROW(LoadDecoder(*dir_ / "franka.h5"), AdaptError);
  // Tokens that are no square grid (one vector per camera of a two-view model) are laid out together.
  LatentDecoder two_views(2, 16, 32);
  EXPECT_EQ((std::vector<int64_t>{3, 3, 32, 32}), two_views->forward(torch::randn({3, 2, 16})).sizes().vec());
}

// Tests the adapt program's answers to bad input: missing data or encoder name the command that
// makes them, data of another embodiment and a model of another encoder are refused, nothing is written.
// Tests a model that reads two cameras: each camera's latent cache lies apart, a frame's latents are
// camera0's tokens then camera1's (each layer-normalized as one camera's alone), the camera features
// are both cameras' 12 numbers, an untrained two-view predictor is copy-last, and the adapt program
// trains and evaluates one (`--camera camera0 camera1`), keeps the cameras with the model and
// refuses to start a one-camera model from it.
TEST_F(AdaptTest, TwoCamerasAreTheTokensOfOneFrame) {
  const fs::path data = *dir_ / "franka2.h5";
  collect::CollectConfig c;
  c.robot = "franka";
  c.episodes = 12;
  c.steps = 20;
  c.image_size = 32;
  c.cameras = 2;
  c.seed = 4;
  c.out = data.string();
  collect::Collect(c, {.enabled = false});
  FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "enc.pt");
  const fs::path c0 = EnsureLatentCache(encoder, data, "camera0").path, c1 = EnsureLatentCache(encoder, data, "camera1").path;
  EXPECT_NE(c0, c1);
  EXPECT_EQ(c1, LatentCachePath(data, encoder.hash(), "camera1"));
  EXPECT_EQ(c0, LatentCachePath(data, encoder.hash()));
  EXPECT_TRUE(fs::exists(c0) && fs::exists(c1));  // building camera1's left camera0's in place

  const StageTwoData one(data, c0, "camera0"), other(data, c1, "camera1");
  const StageTwoData both(data, std::vector<fs::path>{c0, c1}, std::vector<std::string>{"camera0", "camera1"});
  EXPECT_EQ(both.tokens(), 2 * one.tokens());
  EXPECT_EQ(both.camera(), "camera0");
  const auto& ep = both.episodes("train")[1];
  const auto w = both.Read(ep, 2, 3, 2), w0 = one.Read(ep, 2, 3, 2), w1 = other.Read(ep, 2, 3, 2);
  EXPECT_TRUE(torch::equal(w.latents.slice(1, 0, one.tokens()), w0.latents));
  EXPECT_TRUE(torch::equal(w.latents.slice(1, one.tokens()), w1.latents));
  EXPECT_FALSE(torch::allclose(w0.latents, w1.latents));  // the views differ
  ASSERT_EQ(w.camera.numel(), 24);
  EXPECT_TRUE(torch::equal(w.camera.slice(0, 0, 12), w0.camera));
  EXPECT_TRUE(torch::equal(w.camera.slice(0, 12), w1.camera));
  EXPECT_TRUE(torch::equal(w.actions, w0.actions));
  // A cache given for the wrong camera is stale; caches and cameras must pair up.
  EXPECT_THROW(StageTwoData(data, std::vector<fs::path>{c0, c0}, std::vector<std::string>{"camera0", "camera1"}), AdaptError);
  EXPECT_THROW(StageTwoData(data, std::vector<fs::path>{c0}, std::vector<std::string>{"camera0", "camera1"}), AdaptError);

  // An untrained two-view predictor is copy-last; its camera token takes 24 numbers.
  PredictorConfig pc = Tiny().predictor;
  pc.tokens = both.tokens();
  pc.cameras = {"camera0", "camera1"};
  torch::manual_seed(2);
  WorldModel model(pc);
  model.AddEmbodiment(both.spec(), both.ComputeNormalizer());
  model.Train(false);
  const auto x = both.Read(ep, 0, 3, 2);
  const auto pred = model.Predict("franka", x.latents.unsqueeze(0), x.proprio.unsqueeze(0), x.actions.unsqueeze(0), x.camera.unsqueeze(0));
  EXPECT_TRUE(torch::allclose(pred[0], x.latents, 1e-5, 1e-5));
  EXPECT_EQ(PredictorConfig::FromJson(pc.ToJson()).cameras, pc.cameras);
  PredictorConfig odd = pc;
  odd.tokens = one.tokens() * 2 + 1;  // tokens that do not split evenly between the cameras
  EXPECT_THROW(WorldModel{odd}, AdaptError);

  // The program, end to end.
  const std::string bin = ADAPT_BIN, out = (*dir_ / "two_views").string(), log = (*dir_ / "two_views.log").string();
  auto run = [&](const std::string& args) {
    const int rc = std::system((bin + " " + args + " > " + log + " 2>&1").c_str());
    std::ifstream in(log);
    return std::make_pair(rc, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const std::string common = "--embodiment franka --data " + data.string() + " --encoder " + (*dir_ / "enc.pt").string() +
                             " --steps 20 --eval-every 10 --width 16 --depth 1 --frame-skip 2 --threads 2 --eval-seconds 0.4 --readout-episodes 4";
  auto [rc, msg] = run(common + " --camera camera0 camera1 --out " + out);
  ASSERT_EQ(0, rc) << msg;
  std::string hash;
  const WorldModel trained = LoadWorldModel(out, &hash);
  EXPECT_EQ(trained.config().cameras, (std::vector<std::string>{"camera0", "camera1"}));
  EXPECT_EQ(trained.config().tokens, both.tokens());
  EXPECT_TRUE(fs::exists(fs::path(out) / "metrics.json"));
  // Without --camera a new model reads every view of the dataset (was: camera0 alone, silently).
  const std::string all_views = (*dir_ / "all_views").string();
  auto [rc_all, msg_all] = run(common + " --out " + all_views);
  ASSERT_EQ(0, rc_all) << msg_all;
  EXPECT_EQ(LoadWorldModel(all_views).config().cameras, (std::vector<std::string>{"camera0", "camera1"}));
  EXPECT_THAT(msg_all, HasSubstr("reading the dataset's views camera0 camera1"));
  auto [rc_eval, msg_eval] = run(common + " --eval --out " + out);  // the model's cameras, without --camera
  EXPECT_EQ(0, rc_eval) << msg_eval;
  auto [rc_init, msg_init] = run(common + " --camera camera0 --init " + out + " --out " + (*dir_ / "one_view").string());
  EXPECT_NE(0, rc_init);
  EXPECT_THAT(msg_init, HasSubstr("a model transfers between robots with the same views"));
  // Started from a model (its cameras), the trunk learns at kInitTrunkLrScale of --lr unless told.
  const auto scale_of = [](const std::string& dir) {
    return nlohmann::json::parse(std::ifstream(fs::path(dir) / "metrics.json"))["train"]["config"]["trunk_lr_scale"].get<double>();
  };
  const std::string from = (*dir_ / "from_two_views").string();
  auto [rc_from, msg_from] = run(common + " --init " + out + " --out " + from);
  ASSERT_EQ(0, rc_from) << msg_from;
  EXPECT_DOUBLE_EQ(kInitTrunkLrScale, scale_of(from));
  auto [rc_told, msg_told] = run(common + " --init " + out + " --trunk-lr-scale 1 --overwrite --out " + from);
  ASSERT_EQ(0, rc_told) << msg_told;
  EXPECT_DOUBLE_EQ(1.0, scale_of(from));
  // A predictor flag the loaded model overrides is refused, naming both values (was: silently dropped).
  std::string skip4 = common;
  skip4.replace(skip4.find("--frame-skip 2"), 14, "--frame-skip 4");
  auto [rc_skip, msg_skip] = run(skip4 + " --init " + out + " --overwrite --out " + from);
  EXPECT_NE(0, rc_skip);
  EXPECT_THAT(msg_skip, HasSubstr("--frame-skip 4 conflicts with " + out + ", the model --init starts from (frame skip 2)"));
  std::string wide = common;
  wide.replace(wide.find("--width 16"), 10, "--width 32");
  auto [rc_wide, msg_wide] = run(wide + " --eval --out " + out);
  EXPECT_NE(0, rc_wide);
  EXPECT_THAT(msg_wide, HasSubstr("--width 32 conflicts with " + out + ", the model --eval evaluates (width 16)"));
  EXPECT_DOUBLE_EQ(1.0, scale_of(from));  // the refused run left the model it would have replaced
  auto [rc_mix, msg_mix] = run(common + " --eval --camera camera1 --out " + out);
  EXPECT_NE(0, rc_mix);
  EXPECT_THAT(msg_mix, HasSubstr("reads cameras [\"camera0\",\"camera1\"], not [\"camera1\"]"));
}

// Tests a model that reads an agent view and the camera on the hand (simcollect --eye-in-hand): its
// camera token sees where the camera sits on the hand (one pose for the episode, though the camera's
// world pose changes every frame), the program trains one and refuses the hand's camera listed first.
TEST_F(AdaptTest, HandCameraIsReadWithItsPoseOnTheHand) {
  const fs::path data = *dir_ / "franka_eye.h5";
  collect::CollectConfig c;
  c.robot = "franka";
  c.episodes = 10;
  c.steps = 20;
  c.image_size = 32;
  c.eye_in_hand = true;
  c.seed = 5;
  c.out = data.string();
  collect::Collect(c, {.enabled = false});
  FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "enc.pt");
  const fs::path c0 = EnsureLatentCache(encoder, data, "camera0").path, hand = EnsureLatentCache(encoder, data, "robot0_eye_in_hand").path;
  const StageTwoData both(data, std::vector<fs::path>{c0, hand}, std::vector<std::string>{"camera0", "robot0_eye_in_hand"});
  const auto& ep = both.episodes("train")[0];
  const auto w = both.Read(ep, 2, 3, 2);
  ASSERT_EQ(w.camera.numel(), 24);
  const auto expected = CameraFeatures(CameraTokenPose(both.dataset(), ep.demo, "robot0_eye_in_hand"));
  EXPECT_TRUE(torch::allclose(w.camera.slice(0, 12), expected.to(w.camera.scalar_type())));
  const auto poses = both.dataset().CameraPoses(ep.demo, "robot0_eye_in_hand");
  const auto world = CameraFeatures(std::vector<double>(poses.begin(), poses.begin() + 16));
  EXPECT_FALSE(torch::allclose(expected, world, 1e-3, 1e-3));  // not its world pose
  PredictorConfig pc;
  pc.cameras = {"camera0", "robot0_eye_in_hand"};
  EXPECT_EQ(pc.agent_views(), 1);
  EXPECT_TRUE(pc.reads_hand());
  EXPECT_NO_THROW(pc.RequireNumberedCameras("plan renders"));
  pc.cameras = {"robot0_eye_in_hand"};  // no agent view
  EXPECT_THROW(pc.RequireNumberedCameras("plan renders"), AdaptError);

  const std::string bin = ADAPT_BIN, out = (*dir_ / "hand_view").string(), log = (*dir_ / "hand_view.log").string();
  auto run = [&](const std::string& args) {
    const int rc = std::system((bin + " " + args + " > " + log + " 2>&1").c_str());
    std::ifstream in(log);
    return std::make_pair(rc, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const std::string common = "--embodiment franka --data " + data.string() + " --encoder " + (*dir_ / "enc.pt").string() +
                             " --steps 10 --eval-every 10 --width 16 --depth 1 --frame-skip 2 --threads 2 --eval-seconds 0.4 --readout-episodes 4";
  auto [rc, msg] = run(common + " --camera camera0 robot0_eye_in_hand --out " + out);
  ASSERT_EQ(0, rc) << msg;
  EXPECT_EQ(LoadWorldModel(out).config().cameras, (std::vector<std::string>{"camera0", "robot0_eye_in_hand"}));
  auto [rc_first, msg_first] = run(common + " --camera robot0_eye_in_hand camera0 --out " + out + "_first");
  EXPECT_NE(0, rc_first);
  EXPECT_THAT(msg_first, HasSubstr("list the hand's robot0_eye_in_hand last"));
  EXPECT_FALSE(fs::exists(out + "_first"));
}

TEST_F(AdaptTest, ProgramRefusesBadInputsClearly) {
  const std::string bin = ADAPT_BIN, data = (*dir_ / "franka.h5").string(), out = (*dir_ / "cli_out").string();
  auto run = [&](const std::string& args) {
    const std::string log = (*dir_ / "cli.log").string();
    const int rc = std::system((bin + " " + args + " > " + log + " 2>&1").c_str());
    std::ifstream in(log);
    return std::make_pair(rc, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  auto [rc1, msg1] = run("--embodiment ur5 --data " + (*dir_ / "nope.h5").string() + " --out " + out);
  EXPECT_NE(0, rc1);
  EXPECT_THAT(msg1, HasSubstr("run: simcollect --robot ur5"));
  auto [rc2, msg2] = run("--embodiment franka --data " + data + " --encoder " + (*dir_ / "none.pt").string() + " --out " + out);
  EXPECT_NE(0, rc2);
  EXPECT_THAT(msg2, HasSubstr("run: pretrain"));
  auto [rc3, msg3] = run("--embodiment ur5 --data " + data + " --encoder " + (*dir_ / "enc.pt").string() + " --out " + out);
  EXPECT_NE(0, rc3);
  EXPECT_THAT(msg3, HasSubstr("holds franka episodes, not ur5"));
  EXPECT_FALSE(fs::exists(out));

  // A model trained on another encoder's latents is refused at evaluation.
  const StageTwoData d(data, *cache_);
  WorldModel m(Tiny().predictor);
  m.AddEmbodiment(d.spec(), d.ComputeNormalizer());
  SaveWorldModel(m, "some-other-encoder", {}, fs::path(out) / "model.pt");
  auto [rc4, msg4] = run("--embodiment franka --eval --data " + data + " --encoder " + (*dir_ / "enc.pt").string() + " --out " + out);
  EXPECT_NE(0, rc4);
  EXPECT_THAT(msg4, HasSubstr("was trained on the latents of encoder some-other-encoder"));
}

// `adapt --levels 2`: the fast model, then the slow level in <out>/slow (a model step of
// --slow-frame-skip control steps, context 1, its options stored as such), evaluated and printed
// beside the fast model chained; bad combinations refused before anything is written.
TEST_F(AdaptTest, TwoLevelsTrainASlowModelBesideTheFastOne) {
  const std::string bin = ADAPT_BIN, data = (*dir_ / "franka.h5").string(), out = (*dir_ / "levels").string();
  auto run = [&](const std::string& args) {
    const std::string log = (*dir_ / "levels.log").string();
    const int rc = std::system((bin + " " + args + " > " + log + " 2>&1").c_str());
    std::ifstream in(log);
    return std::make_pair(rc, std::string(std::istreambuf_iterator<char>(in), {}));
  };
  const std::string common = "--embodiment franka --data " + data + " --encoder " + (*dir_ / "enc.pt").string() +
                             " --steps 10 --eval-every 10 --width 16 --depth 1 --frame-skip 2 --threads 2 --eval-seconds 0.4 --readout-episodes 4"
                             " --out " +
                             out;
  auto [rc_odd, msg_odd] = run(common + " --levels 2 --slow-frame-skip 3");
  EXPECT_NE(0, rc_odd);
  EXPECT_THAT(msg_odd, HasSubstr("--slow-frame-skip must be a multiple of --frame-skip (2)"));
  auto [rc_one, msg_one] = run(common + " --slow-frame-skip 4");
  EXPECT_NE(0, rc_one);
  EXPECT_THAT(msg_one, HasSubstr("--slow-frame-skip sets the slow level: add --levels 2"));
  EXPECT_FALSE(fs::exists(out));

  auto [rc, msg] = run(common + " --levels 2 --slow-frame-skip 4");
  ASSERT_EQ(0, rc) << msg;
  const WorldModel fast = LoadWorldModel(out), slow = LoadWorldModel(fs::path(out) / "slow");
  EXPECT_EQ(fast.config().frame_skip, 2);
  EXPECT_EQ(slow.config().frame_skip, 4);
  EXPECT_EQ(slow.config().context, 1);
  const auto metrics = nlohmann::json::parse(std::ifstream(fs::path(out) / "slow" / "metrics.json"));
  EXPECT_EQ(metrics["frame_skip"], 4);
  EXPECT_EQ(metrics["options"]["frame-skip"], 4);  // adapt --config on it trains a slow model again
  EXPECT_EQ(metrics["options"]["out"], (fs::path(out) / "slow").string());
  EXPECT_THAT(msg, HasSubstr("two levels, ee read-out gap closed"));
  EXPECT_THAT(msg, HasSubstr("slow (1 step)"));
  EXPECT_THAT(msg, HasSubstr("fast chained (2 steps)"));
  auto [rc_init, msg_init] = run(common + " --levels 2 --init " + out + " --overwrite");
  EXPECT_NE(0, rc_init);
  EXPECT_THAT(msg_init, HasSubstr("--levels 2 with --init"));
}

// The evaluation says whether the model is good: targets whose gap cannot be judged (the true
// future's read-out not well below copy-last's) are "n/a" with the reason, never "NOT met", and the
// verdict line tells better than copy-last from not.
TEST(JudgeSummary, IneligibleGapsAreNotApplicableAndTheVerdictFollowsTheFigures) {
  const nlohmann::json good = {{"ee_gap_closed_1s", 0.93},      {"ee_gap_closed_2s", 0.94},          {"object_gap_closed_2s", 0.675},
                               {"ee_floor_over_copy_1s", 0.31}, {"object_floor_over_copy_2s", 0.81}, {"latent_ratio_h1", 0.51},
                               {"retrieval_top1_1s", 0.57}};
  const nlohmann::json j = JudgeSummary(good);
  EXPECT_TRUE(j["met"]["ee_gap_closed_1s"].get<bool>());
  EXPECT_TRUE(j["not_judged"]["ee_gap_closed_1s"].is_null());
  EXPECT_THAT(j["not_judged"]["object_gap_closed_2s"].get<std::string>(), HasSubstr("object floor/copy 0.81 > 0.5"));
  EXPECT_THAT(j["verdict"].get<std::string>(), HasSubstr("verdict: better than copy-last, meeting the ee target"));
  nlohmann::json copying = good;
  copying["ee_gap_closed_1s"] = -0.05;
  copying["latent_ratio_h1"] = 1.02;
  EXPECT_THAT(JudgeSummary(copying)["verdict"].get<std::string>(), HasSubstr("verdict: NOT better than copy-last"));
  nlohmann::json still = good;
  still["ee_floor_over_copy_1s"] = 0.8;  // the arm barely moved: the ee gaps cannot be judged
  const nlohmann::json s2 = JudgeSummary(still);
  EXPECT_THAT(s2["verdict"].get<std::string>(), HasSubstr("verdict: undecided"));
  EXPECT_FALSE(s2["not_judged"]["ee_gap_closed_2s"].is_null());
  EXPECT_FALSE(s2["met"]["ee_gap_closed_1s"].get<bool>());
}

}  // namespace
}  // namespace embody::adapt
