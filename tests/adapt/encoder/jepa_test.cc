// Tests for adapt/encoder/jepa.cc and adapt/encoder/encoder.cc: real LibTorch training on a tiny real dataset.
#include "adapt/encoder/jepa.h"

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/encoder/latent_cache.h"
#include "collect/collector.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Tests that tube masks hide about the requested ratio, the same tokens in every frame, and never
// all or none of them.
TEST(MaskTest, CoversRatioAndNeverEverything) {
  std::mt19937_64 rng(1);
  for (double ratio : {0.05, 0.3, 0.6, 0.9, 0.99}) {
    double total = 0;
    for (int trial = 0; trial < 200; ++trial) {
      const auto mask = SampleTubeMask(4, 8, ratio, &rng);
      ASSERT_EQ(256u, mask.size());
      const int hidden = static_cast<int>(std::count(mask.begin(), mask.end(), true));
      ASSERT_GT(hidden, 0);
      ASSERT_LT(hidden, 256);
      for (int i = 0; i < 64; ++i) ASSERT_EQ(mask[i], mask[3 * 64 + i]);  // tubes span the clip
      ASSERT_GE(hidden / 256.0, std::min(ratio, 63.0 / 64) - 1e-9);
      total += hidden / 256.0;
    }
    EXPECT_LT(total / 200, ratio + 0.2) << ratio;  // blocks overshoot the ratio only a little
  }
}

// Tests the EMA rule on known values: target <- m * target + (1 - m) * online.
TEST(EmaTest, UpdatesTowardOnline) {
  torch::nn::Linear target(2, 1), online(2, 1);
  {
    torch::NoGradGuard no_grad;
    target->weight.fill_(1.0);
    target->bias.fill_(0.0);
    online->weight.fill_(3.0);
    online->bias.fill_(-2.0);
  }
  EmaUpdate(*target, *online, 0.75);
  EXPECT_FLOAT_EQ(1.5, target->weight[0][0].item<float>());
  EXPECT_FLOAT_EQ(-0.5, target->bias[0].item<float>());
  EXPECT_FLOAT_EQ(3.0, online->weight[0][1].item<float>());
  EmaUpdate(*target, *online, 0.0);
  EXPECT_FLOAT_EQ(3.0, target->weight[0][1].item<float>());
}

class PretrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = new fs::path(fs::temp_directory_path() / ("embody_adapt_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    tiny::CollectFranka(*dir_ / "tiny.h5", 20, 12, 1);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static JepaConfig Tiny() { return tiny::Jepa(); }
  static fs::path* dir_;
};
fs::path* PretrainTest::dir_ = nullptr;

// Tests that a tiny pretraining run lowers the validation loss, keeps its latents from collapsing,
// and that the saved checkpoint gives the trained target encoder's latents exactly.
TEST_F(PretrainTest, LowersLossWithoutCollapseAndRoundTrips) {
  const VideoData data({*dir_ / "tiny.h5"});
  const fs::path out = *dir_ / "enc.pt";
  Pretrainer trainer(Tiny(), data, out, /*resume=*/false);
  const double before = trainer.Validate();
  const PretrainStats stats = trainer.Train(/*verbose=*/false);
  EXPECT_EQ(40, stats.step);
  EXPECT_LT(stats.val_loss, 0.8 * before) << "before " << before;
  EXPECT_GT(stats.target_std, 1e-2);

  FrozenEncoder frozen = FrozenEncoder::Load(out);
  EXPECT_EQ("embody", frozen.kind());
  EXPECT_EQ(32, frozen.image_size());
  const auto x = torch::rand({2, 3, 3, 32, 32});
  torch::NoGradGuard no_grad;
  trainer.target()->eval();
  const auto expected = trainer.target()->forward(x);
  const auto latents = frozen.Encode(x);
  EXPECT_EQ((std::vector<int64_t>{2, 3, 16, 16}), latents.sizes().vec());
  EXPECT_TRUE(torch::equal(expected, latents));

  // Resuming restores the weights and the step, and training continues from there.
  JepaConfig more = Tiny();
  Pretrainer resumed(more, data, out, /*resume=*/true);
  resumed.target()->eval();
  EXPECT_TRUE(torch::equal(expected, resumed.target()->forward(x)));
}

// Tests that the probe set holds every stride-th frame with its 18 targets (the image-plane depth
// equals minus the camera-frame z), and that the supervised ceiling really trains: scored on its own
// training frames it fits the end-effector position, which an untrained network does not.
TEST_F(PretrainTest, ProbeSetAndSupervisedCeiling) {
  const VideoData data({*dir_ / "tiny.h5"});
  const ProbeSet train = LoadProbeSet(data, "train", 1000, 2), test = LoadProbeSet(data, "valid", 1000, 2);
  ASSERT_EQ(data.episodes("train").size(), train.frames.size());
  EXPECT_EQ(6 * static_cast<int64_t>(train.frames.size()), train.size());  // 12 steps, every 2nd
  EXPECT_EQ((std::vector<int64_t>{6, 32, 32, 3}), train.frames[0].sizes().vec());
  EXPECT_EQ((std::vector<int64_t>{6, 18}), train.targets[0].sizes().vec());
  ASSERT_EQ(train.frames.size(), train.object_in_view.size());
  EXPECT_EQ((std::vector<int64_t>{6}), train.object_in_view[0].sizes().vec());
  const auto y = torch::cat(train.targets);
  EXPECT_TRUE(torch::allclose(y.select(1, 14), -y.select(1, 8)));   // ee depth = -z (camera looks along -z)
  EXPECT_TRUE(torch::allclose(y.select(1, 17), -y.select(1, 11)));  // object depth = -z
  EXPECT_TRUE((y.select(1, 14) > 0).all().item<bool>());            // in front of the camera
  // A rigid change of frame keeps distances: ee-to-object distance is the same in world and camera frames.
  const auto world_distance = (y.slice(1, 0, 3) - y.slice(1, 3, 6)).norm(2, 1);
  EXPECT_TRUE(torch::allclose(world_distance, (y.slice(1, 6, 9) - y.slice(1, 9, 12)).norm(2, 1)));

  const EncoderConfig config = Tiny().encoder;
  const ProbeResult untrained = SupervisedCeiling(config, train, train, 0, 5);
  const ProbeResult fitted = SupervisedCeiling(config, train, train, 40, 5);
  EXPECT_GT(fitted.ee.r2, 0.8);
  EXPECT_GT(fitted.ee_world.r2, 0.8);
  EXPECT_GT(fitted.ee_image.r2, 0.8);
  EXPECT_LT(untrained.ee.r2, 0.2);
  const ProbeResult held_out = SupervisedCeiling(config, train, test, 5, 5);
  EXPECT_TRUE(std::isfinite(held_out.object.r2));
  EXPECT_EQ(test.size(), held_out.test_frames);
}

// Tests that resuming with other options, overwriting by accident, and bad files are refused clearly.
TEST_F(PretrainTest, BadInputsFailClearly) {
  const VideoData data({*dir_ / "tiny.h5"});
  const fs::path out = *dir_ / "enc2.pt";
  JepaConfig c = Tiny();
  c.steps = 2;
  Pretrainer(c, data, out, false).Train(false);
  EXPECT_THROW(Pretrainer(c, data, out, /*resume=*/false), AdaptError);
  JepaConfig other = c;
  other.mask_ratio = 0.3;
  try {
    Pretrainer(other, data, out, /*resume=*/true);
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("trained with other options"));
  }
  try {
    FrozenEncoder::Load(*dir_ / "missing.pt");
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("run: pretrain"));
  }
  try {
    FrozenEncoder::Load(*dir_ / "tiny.h5");
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("neither an Embody encoder checkpoint nor a TorchScript module"));
  }
  try {
    VideoData({*dir_ / "ur5.h5"});
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("run: simcollect --robot ur5"));
  }
  FrozenEncoder ours = FrozenEncoder::Load(out);
  try {
    ours.Encode(torch::rand({1, 2, 3, 64, 64}));
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("expects frames (B,T,3,32,32)"));
  }
}

// Tests that a TorchScript encoder exported from Python (Debian's python3-torch) loads, runs, and
// goes through the probe evaluation; a wrong output rank is a clear error.
TEST_F(PretrainTest, TorchScriptEncoderRunsThroughPipeline) {
  const std::string script = std::string(EMBODY_TESTS_DIR) + "/adapt/make_torchscript_encoder.py";
  ASSERT_EQ(0, std::system(("/usr/bin/python3 " + script + " " + dir_->string() + " 32").c_str()));
  FrozenEncoder good = FrozenEncoder::Load(*dir_ / "good.pt");
  EXPECT_EQ("torchscript", good.kind());
  EXPECT_EQ(32, good.image_size());
  EXPECT_EQ((std::vector<int64_t>{2, 3, 16, 16}), good.Encode(torch::rand({2, 3, 3, 32, 32})).sizes().vec());
  FrozenEncoder traced = FrozenEncoder::Load(*dir_ / "traced.pt", /*default_image_size=*/32);
  EXPECT_EQ(32, traced.image_size());
  EXPECT_TRUE(torch::equal(good.Encode(torch::ones({1, 1, 3, 32, 32})), traced.Encode(torch::ones({1, 1, 3, 32, 32}))));
  const VideoData data({*dir_ / "tiny.h5"});
  const ProbeResult probe = EvaluateProbes(good, data, 20, 4);
  EXPECT_TRUE(std::isfinite(probe.ee.r2));
  EXPECT_GT(probe.test_frames, 0);
  // The object's probes leave out the frames where it is out of view: whatever its targets say there
  // (a cup fallen off the table, far outside the image) changes nothing, and the frames are counted.
  const ProbeSet train = LoadProbeSet(data, "train", 20, 4), test = LoadProbeSet(data, "valid", 20, 4);
  ProbeSet hidden = test, corrupted = test;
  for (ProbeSet* set : {&hidden, &corrupted}) {
    set->object_in_view[0] = set->object_in_view[0].clone();
    set->object_in_view[0][0] = false;
    set->targets[0] = set->targets[0].clone();
  }
  corrupted.targets[0][0].slice(0, 3, 18).fill_(1e3);  // the object's columns (and the ee's camera/image ones)
  const ProbeResult a = EvaluateProbes(good, train, hidden), b = EvaluateProbes(good, train, corrupted);
  EXPECT_DOUBLE_EQ(a.object_image.r2, b.object_image.r2);
  EXPECT_DOUBLE_EQ(a.object_world.r2, b.object_world.r2);
  EXPECT_NE(a.ee_image.r2, b.ee_image.r2);  // the ee's columns still count that frame
  EXPECT_EQ(probe.object_out_of_view + (test.object_in_view[0][0].item<bool>() ? 1 : 0), a.object_out_of_view);
  FrozenEncoder bad = FrozenEncoder::Load(*dir_ / "bad_rank.pt");
  try {
    bad.Encode(torch::rand({1, 2, 3, 32, 32}));
    FAIL() << "expected AdaptError";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("the interface is tokens (B,T,N,D)"));
  }
}

// Tests that the latent cache holds the encoder's latents of every frame, is reused while the dataset
// is unchanged, is rebuilt when the dataset changes, and is kept apart per encoder.
TEST_F(PretrainTest, LatentCacheIsReusedAndInvalidated) {
  collect::CollectConfig c;
  c.episodes = 6;
  c.steps = 10;
  c.image_size = 32;
  c.out = (*dir_ / "cached.h5").string();
  collect::Collect(c, {.enabled = false});
  JepaConfig config = Tiny();
  config.steps = 1;
  Pretrainer(config, VideoData({c.out}), *dir_ / "cache_enc.pt", false).Train(false);
  FrozenEncoder encoder = FrozenEncoder::Load(*dir_ / "cache_enc.pt");

  const CacheStatus first = EnsureLatentCache(encoder, c.out);
  EXPECT_TRUE(first.built);
  EXPECT_FALSE(first.stale);
  EXPECT_EQ(60, first.frames);
  EXPECT_EQ(LatentCachePath(c.out, encoder.hash()), first.path);
  const VideoData data({c.out});
  const EpisodeRef episode{0, "demo_4", 10};
  auto frames = data.Frames(episode, 0, 10);
  const auto expected = encoder.Encode(FramesToInput(torch::from_blob(frames.data(), {10, 1, 32, 32, 3}, torch::kUInt8).clone())).squeeze(1);
  EXPECT_TRUE(torch::allclose(expected, ReadCachedLatents(first.path, "demo_4"), 1e-5, 1e-6));

  const CacheStatus again = EnsureLatentCache(encoder, c.out);
  EXPECT_FALSE(again.built);

  c.overwrite = true;
  c.seed = 99;  // same name, different content
  collect::Collect(c, {.enabled = false});
  const CacheStatus rebuilt = EnsureLatentCache(encoder, c.out);
  EXPECT_TRUE(rebuilt.built);
  EXPECT_TRUE(rebuilt.stale);
  config.seed = 4;
  Pretrainer(config, VideoData({c.out}), *dir_ / "cache_enc2.pt", false).Train(false);
  FrozenEncoder other = FrozenEncoder::Load(*dir_ / "cache_enc2.pt");
  EXPECT_NE(LatentCachePath(c.out, encoder.hash()), LatentCachePath(c.out, other.hash()));
  EXPECT_THROW(ReadCachedLatents(first.path, "demo_77"), AdaptError);
}

}  // namespace
}  // namespace embody::adapt

namespace embody::adapt {
namespace {

// Synthetic latents: a 4x4 grid of 8-dim noise tokens in which one token, at a random place, carries
// an object code (+3 on dimension 0); the targets are that token's row and column (and a third,
// constant-noise column). n frames per episode.
void ObjectCodeLatents(int episodes, int n, std::uint64_t seed, std::vector<torch::Tensor>* xs, std::vector<torch::Tensor>* ys) {
  torch::manual_seed(seed);
  for (int e = 0; e < episodes; ++e) {
    auto x = torch::randn({n, 16, 8}) * 0.5;
    const auto at = torch::randint(0, 16, {n}, torch::kLong);
    for (int i = 0; i < n; ++i) x[i][at[i].item<int64_t>()][0] += 3.0;
    ys->push_back(torch::stack({(at / 4).to(torch::kFloat64), (at % 4).to(torch::kFloat64), torch::randn({n}, torch::kFloat64)}, 1));
    xs->push_back(x);
  }
}

// Tests the attentive probe (pretrain --probe attentive): it reads back where in the grid a known
// object code is (what pooling every token loses), scores a target with nothing to read near zero,
// is deterministic for a seed, and reads one vector token (the vector design) as well.
TEST(AttentiveProbeTest, ReadsAnObjectCodesPlaceFromTheTokens) {
  std::vector<torch::Tensor> xs, ys, xt_list, yt_list;
  ObjectCodeLatents(20, 60, 1, &xs, &ys);
  ObjectCodeLatents(1, 200, 2, &xt_list, &yt_list);
  const auto r2 = AttentiveProbeR2(xs, ys, xt_list[0], yt_list[0], 7, 40);
  EXPECT_GT(r2[0].item<double>(), 0.8) << "row of the object's token";
  EXPECT_GT(r2[1].item<double>(), 0.8) << "column of the object's token";
  EXPECT_LT(r2[2].item<double>(), 0.2) << "a target with nothing to read";
  EXPECT_TRUE(torch::equal(AttentiveProbeR2(xs, ys, xt_list[0], yt_list[0], 7, 2), AttentiveProbeR2(xs, ys, xt_list[0], yt_list[0], 7, 2)));
  // Pooled (the ridge probe's view of a grid, here all tokens averaged) the place is gone.
  std::vector<torch::Tensor> pooled;
  for (const auto& x : xs) pooled.push_back(x.mean(1, /*keepdim=*/true));
  EXPECT_LT(AttentiveProbeR2(pooled, ys, xt_list[0].mean(1, true), yt_list[0], 7, 10)[0].item<double>(), 0.3);
  // One token per frame (the vector design) whose numbers are the place: read as well.
  std::vector<torch::Tensor> vectors;
  for (size_t e = 0; e < ys.size(); ++e)
    vectors.push_back(torch::cat({ys[e].slice(1, 0, 2), torch::randn({60, 6})}, 1).to(torch::kFloat32).unsqueeze(1));
  const auto vt = torch::cat({yt_list[0].slice(1, 0, 2), torch::randn({200, 6})}, 1).to(torch::kFloat32).unsqueeze(1);
  EXPECT_GT(AttentiveProbeR2(vectors, ys, vt, yt_list[0], 7, 10)[0].item<double>(), 0.9);
}

}  // namespace
}  // namespace embody::adapt
