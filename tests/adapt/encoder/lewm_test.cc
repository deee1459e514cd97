// Tests for adapt/encoder/lewm.cc: SIGReg and the LeWM stage-one trainer on a tiny real dataset.
#include "adapt/encoder/lewm.h"

#include <unistd.h>

#include <cmath>
#include <functional>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/hdf5_util.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Tests that SIGReg is small for a standard Gaussian batch and large for a collapsed or a
// stretched one, and that it has a finite gradient.
TEST(SigRegTest, SmallForIsotropicGaussianLargeForCollapse) {
  torch::manual_seed(1);
  const auto gaussian = torch::randn({512, 16});
  const auto collapsed = torch::randn({1, 16}).expand({512, 16}) + 0.01 * torch::randn({512, 16});
  const auto stretched = 4 * torch::randn({512, 16});
  const double g = SigReg(gaussian, 64).item<double>(), c = SigReg(collapsed, 64).item<double>(), s = SigReg(stretched, 64).item<double>();
  EXPECT_LT(g, 1.0);
  EXPECT_GT(c, 20 * g) << g << " " << c;
  EXPECT_GT(s, 20 * g) << g << " " << s;
  auto z = torch::randn({64, 8}, torch::requires_grad());
  SigReg(z, 16).backward();
  EXPECT_TRUE(torch::isfinite(z.grad()).all().item<bool>());
}

class LewmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = new fs::path(fs::temp_directory_path() / ("embody_lewm_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    tiny::CollectFranka(*dir_ / "franka.h5", 20, 20, 4);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  // A small franka dataset of 32 px, 20-step episodes in the suite's folder, `change` applied to its options.
  static fs::path Franka32(const std::string& name, int episodes, std::uint64_t seed, const std::function<void(collect::CollectConfig*)>& change) {
    collect::CollectConfig c;
    c.robot = "franka";
    c.episodes = episodes;
    c.steps = 20;
    c.image_size = 32;
    c.cameras = 1;  // one view unless a test asks for more
    c.seed = seed;
    c.out = (*dir_ / name).string();
    change(&c);
    collect::Collect(c, {.enabled = false});
    return c.out;
  }
  static LewmConfig Tiny() {
    LewmConfig c;
    c.encoder = {32, 8, 16, "vector", 64};
    c.frame_skip = 2;
    c.rollout = 2;
    c.predictor_width = 64;
    c.sigreg_projections = 32;
    c.batch = 8;
    c.steps = 30;
    c.lr = 2e-3;
    c.threads = 2;
    c.log_every = 1000;
    c.eval_every = 1000;
    c.seed = 5;
    return c;
  }
  static fs::path* dir_;
};
fs::path* LewmTest::dir_ = nullptr;

// Tests a tiny LeWM run: batches hold clips of rollout + 2 frames, a model step apart, with the
// model step's actions; the loss is finite and the within-clip contrastive term falls; the checkpoint
// is a frozen encoder with one vector per frame; a rerun with the same seed gives the same encoder;
// resume continues and refuses other options.
TEST_F(LewmTest, TinyRunTrainsAVectorEncoderAndResumes) {
  const VideoData data({*dir_ / "franka.h5"});
  const LewmConfig config = Tiny();
  const fs::path out = *dir_ / "enc.pt";
  LewmStats first;
  {  // a look at one batch and the untrained loss, in a trainer of its own (a forward pass moves BatchNorm's statistics)
    LewmTrainer look(config, data, *dir_ / "look.pt", false);
    std::mt19937_64 rng(1);
    const LewmBatch batch = look.Batch("train", &rng);
    EXPECT_EQ((std::vector<int64_t>{8, 4, 3, 32, 32}), batch.frames.sizes().vec());
    EXPECT_EQ((std::vector<int64_t>{8, 3, 2 * 7 + 1}), batch.conditions.sizes().vec());
    EXPECT_TRUE((batch.conditions.select(2, 14) == 1).all().item<bool>());  // the dataset's one-hot
    look.Loss(batch, &first, 0);
  }
  LewmTrainer trainer(config, data, out, false);
  const LewmStats stats = trainer.Train(false);
  EXPECT_EQ(30, stats.step);
  EXPECT_TRUE(std::isfinite(stats.loss));
  EXPECT_LT(stats.contrast, first.contrast);  // it learns to tell the clip's frames apart
  EXPECT_TRUE(std::isfinite(stats.sigreg));
  EXPECT_TRUE(std::isfinite(trainer.Validate()));

  FrozenEncoder encoder = FrozenEncoder::Load(out);
  const auto frames = torch::rand({2, 3, 3, 32, 32});
  const auto z = encoder.Encode(frames);
  EXPECT_EQ((std::vector<int64_t>{2, 3, 1, 16}), z.sizes().vec());

  // The same seed gives the same encoder, and reading the next batch on a thread (the default, with
  // Debian's thread-safe HDF5) trains exactly as reading each batch in turn.
  ASSERT_TRUE(config.prefetch);
  ASSERT_TRUE(collect::h5::ThreadSafe());
  LewmConfig in_turn = config;
  in_turn.prefetch = false;
  const fs::path again = *dir_ / "enc_again.pt";
  LewmTrainer(in_turn, data, again, false).Train(false);
  EXPECT_TRUE(torch::equal(z, FrozenEncoder::Load(again).Encode(frames)));

  LewmConfig more = config;
  more.steps = 35;
  EXPECT_EQ(35, LewmTrainer(more, data, out, true).Train(false).step);
  LewmConfig other = config;
  other.sigreg_weight = 1.0;
  try {
    LewmTrainer(other, data, out, true);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("was trained with other options"));
  }
  EXPECT_THROW(LewmTrainer(config, data, out, false), AdaptError);  // would overwrite
  LewmConfig grid = config;                                         // the vector's contrastive term on a grid: refused, naming it
  grid.encoder.head = "grid";
  try {
    LewmTrainer(grid, data, *dir_ / "grid.pt", false);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--contrast-weight is a term of the vector latent"));
  }
  LewmConfig long_clips = config;
  long_clips.frame_skip = 8;  // 4 frames 8 apart need 25 > 20 frames
  try {
    LewmTrainer(long_clips, data, *dir_ / "long.pt", false);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("needs 25"));
  }
}

// The grid latent (pretrain --latent grid): a token per 8x8 pixels, the next-embedding loss on every
// token and SIGReg over tokens. It trains (the held-out next-embedding error falls below copy-last's
// share it started at), the checkpoint is a grid encoder stage two reads (N = 16 tokens at 32 px),
// the same seed gives the same encoder, resume continues it; the grid predictor moves each token
// from its neighbourhood only (a change far away leaves a token's prediction alone).
TEST_F(LewmTest, TinyRunTrainsAGridEncoderWithALossOnEveryToken) {
  const VideoData data({*dir_ / "franka.h5"});
  LewmConfig config = Tiny();
  config.encoder.head = "grid";
  config.contrast_weight = 0;
  config.scene_weight = 0;
  const fs::path out = *dir_ / "grid_enc.pt";
  LewmStats first;
  {
    LewmTrainer look(config, data, *dir_ / "grid_look.pt", false);
    std::mt19937_64 rng(1);
    look.Loss(look.Batch("train", &rng), &first, 0);
  }
  LewmTrainer trainer(config, data, out, false);
  const LewmStats stats = trainer.Train(false);
  EXPECT_EQ(30, stats.step);
  EXPECT_TRUE(std::isfinite(stats.loss) && std::isfinite(stats.sigreg));
  EXPECT_LT(stats.loss, first.loss);
  FrozenEncoder encoder = FrozenEncoder::Load(out);
  const auto frames = torch::rand({2, 3, 3, 32, 32});
  const auto z = encoder.Encode(frames);
  EXPECT_EQ((std::vector<int64_t>{2, 3, 16, 16}), z.sizes().vec());
  LewmTrainer again(config, data, *dir_ / "grid_again.pt", false);
  again.Train(false);
  EXPECT_TRUE(torch::equal(z, FrozenEncoder::Load(*dir_ / "grid_again.pt").Encode(frames)));
  LewmConfig more = config;
  more.steps = 33;
  EXPECT_EQ(33, LewmTrainer(more, data, out, true).Train(false).step);

  // Locality: two 3x3 convolutions see 5x5 tokens; a change in the corner token leaves the far corner's prediction as it was.
  torch::manual_seed(0);
  GridStepPredictor p(16, 5, 32, 4);
  const auto zz = torch::randn({1, 16, 16}), prev = torch::randn({1, 16, 16}), cond = torch::randn({1, 5});
  auto moved = zz.clone();
  moved[0][0] += 1.0;  // token (0, 0)
  torch::NoGradGuard no_grad;
  const auto a = p->forward(zz, prev, cond), b = p->forward(moved, prev, cond);
  EXPECT_TRUE(torch::allclose(a[0][15], b[0][15]));  // token (3, 3): three away
  EXPECT_FALSE(torch::allclose(a[0][1], b[0][1]));   // token (0, 1): next to it
}

// Tests --keypoints: the vector's last 2K numbers are the expected image coordinates of K
// spatial-softmax maps (in [-1, 1]), a bright dot's place moves them the way it moves, the encoder
// trains, saves and loads with them, and a checkpoint without the field reads as 0 keypoints (also
// where a stage-one config holds it: resuming a checkpoint from before keypoints).
TEST_F(LewmTest, KeypointsAreImageCoordinatesInTheVector) {
  EncoderConfig c = Tiny().encoder;
  c.keypoints = 3;
  ConvEncoder encoder(c);
  encoder->eval();
  auto frames = torch::zeros({2, 1, 3, 32, 32});
  frames.index_put_({0, 0, torch::indexing::Slice(), torch::indexing::Slice(4, 8), torch::indexing::Slice(4, 8)}, 1.0);      // top left
  frames.index_put_({1, 0, torch::indexing::Slice(), torch::indexing::Slice(24, 28), torch::indexing::Slice(24, 28)}, 1.0);  // bottom right
  {  // maps that fire on brightness: each keypoint goes to the dot
    torch::NoGradGuard no_grad;
    encoder->keypoint_maps->weight.fill_(0);
    encoder->keypoint_maps->bias.fill_(0);
  }
  const auto z = encoder->forward(frames);
  ASSERT_EQ((std::vector<int64_t>{2, 1, 1, c.dim}), z.sizes().vec());
  const auto points = z.flatten(0, 2).slice(1, c.dim - 6);
  EXPECT_TRUE((points.abs() <= 1.0 + 1e-6).all().item<bool>());
  // Uniform maps (zero weights): every keypoint at the image's centre, whatever the frame.
  EXPECT_TRUE(torch::allclose(points, torch::zeros_like(points), 1e-5, 1e-5));
  {
    torch::NoGradGuard no_grad;
    encoder->keypoint_maps->weight.fill_(5.0);  // every map fires where the features are large
  }
  const auto moved = encoder->forward(frames).flatten(0, 2).slice(1, c.dim - 6);
  // The frames differ only in where the dot is: its x and y, read from the keypoints, differ.
  EXPECT_FALSE(torch::allclose(moved[0], moved[1], 1e-3, 1e-3));
  LewmConfig config = Tiny();
  config.encoder.keypoints = 3;
  config.steps = 5;
  const VideoData data({*dir_ / "franka.h5"});
  LewmTrainer(config, data, *dir_ / "keypoints.pt", false).Train(false);
  FrozenEncoder loaded = FrozenEncoder::Load(*dir_ / "keypoints.pt");
  const auto code = loaded.Encode(torch::rand({1, 2, 3, 32, 32}));
  EXPECT_EQ((std::vector<int64_t>{1, 2, 1, c.dim}), code.sizes().vec());
  EXPECT_TRUE((code.flatten().slice(0, c.dim - 6, c.dim).abs() <= 1.0 + 1e-6).all().item<bool>());
  EXPECT_EQ(0, EncoderConfig::FromJson({{"image_size", 32}, {"width", 8}, {"dim", 16}, {"head", "vector"}, {"hidden", 64}}).keypoints);
  // Likewise inside a stage-one config (what `pretrain --resume` reads from a checkpoint).
  nlohmann::json before = Tiny().ToJson();
  before["encoder"].erase("keypoints");
  EXPECT_EQ(Tiny().ToJson(), LewmConfig::FromJson(before).ToJson());
  c.keypoints = 8;  // 2 x 8 = dim: no room left for the projector
  EXPECT_THROW(ConvEncoder{c}, AdaptError);
}

// Tests the between-scene term: the batch says which episode each clip is from; with the term the
// loss includes it and it falls as the encoder learns to tell the scenes apart; the run is
// deterministic; with a queue, earlier positives travel with the checkpoint (a resumed run
// continues).
TEST_F(LewmTest, SceneTermTellsEpisodesApartAndResumes) {
  const VideoData data({*dir_ / "franka.h5"});
  LewmConfig config = Tiny();
  config.scene_weight = 0.5;
  config.scene_shift = 2;
  config.contrast_weight = 0;
  config.log_every = 10;  // the stats below are the last 10 steps'
  LewmStats first;
  {
    LewmTrainer look(config, data, *dir_ / "scene_look.pt", false);
    std::mt19937_64 rng(1);
    const LewmBatch batch = look.Batch("train", &rng);
    ASSERT_EQ((std::vector<int64_t>{8}), batch.episodes.sizes().vec());
    EXPECT_TRUE((batch.episodes >= 0).all().item<bool>());
    EXPECT_TRUE((batch.episodes < static_cast<int64_t>(data.episodes("train").size())).all().item<bool>());
    look.Loss(batch, &first, 0);
    EXPECT_GT(first.scene, 1.0);  // chance among 8 clips is ln 8 = 2.1
  }
  const fs::path out = *dir_ / "scene.pt";
  const LewmStats stats = LewmTrainer(config, data, out, false).Train(false);
  EXPECT_TRUE(std::isfinite(stats.loss));
  EXPECT_LT(stats.scene, 0.8 * first.scene);
  const auto frames = torch::rand({2, 3, 3, 32, 32});
  const auto z = FrozenEncoder::Load(out).Encode(frames);
  LewmTrainer(config, data, *dir_ / "scene_again.pt", false).Train(false);
  EXPECT_TRUE(torch::equal(z, FrozenEncoder::Load(*dir_ / "scene_again.pt").Encode(frames)));

  LewmConfig queued = config;
  queued.scene_queue = 16;
  queued.steps = 10;
  EXPECT_TRUE(std::isfinite(LewmTrainer(queued, data, *dir_ / "queued.pt", false).Train(false).scene));
  queued.steps = 12;
  EXPECT_EQ(12, LewmTrainer(queued, data, *dir_ / "queued.pt", true).Train(false).step);  // the head and the queue are read back
}

// Tests the pixel term: off, it adds nothing; on, the decoder's error on the clips' first frames
// falls as it trains, the run is deterministic, and the decoder travels with the checkpoint (a
// resumed run continues; one without the term is refused).
TEST_F(LewmTest, PixelTermRedrawsFramesAndResumes) {
  const VideoData data({*dir_ / "franka.h5"});
  LewmConfig config = Tiny();
  {
    LewmTrainer off(config, data, *dir_ / "pixels_off.pt", false);
    std::mt19937_64 rng(1);
    LewmStats s;
    off.Loss(off.Batch("train", &rng), &s, 0);
    EXPECT_EQ(0.0, s.recon);
  }
  config.recon_weight = 1.0;
  config.log_every = 10;  // the stats below are the last 10 steps'
  LewmStats first;
  {
    LewmTrainer look(config, data, *dir_ / "pixels_look.pt", false);
    std::mt19937_64 rng(1);
    look.Loss(look.Batch("train", &rng), &first, 0);
    EXPECT_GT(first.recon, 0.0);
  }
  const fs::path out = *dir_ / "pixels.pt";
  const LewmStats stats = LewmTrainer(config, data, out, false).Train(false);
  EXPECT_TRUE(std::isfinite(stats.loss));
  EXPECT_LT(stats.recon, 0.8 * first.recon);
  const auto frames = torch::rand({2, 3, 3, 32, 32});
  const auto z = FrozenEncoder::Load(out).Encode(frames);
  LewmTrainer(config, data, *dir_ / "pixels_again.pt", false).Train(false);
  EXPECT_TRUE(torch::equal(z, FrozenEncoder::Load(*dir_ / "pixels_again.pt").Encode(frames)));
  LewmConfig more = config;
  more.steps = 32;
  EXPECT_EQ(32, LewmTrainer(more, data, out, true).Train(false).step);
  LewmConfig without = more;
  without.recon_weight = 0;
  EXPECT_THROW(LewmTrainer(without, data, out, true), AdaptError);
  LewmConfig target_alone = Tiny();
  target_alone.recon_target = "highpass";  // without the term it would do nothing
  try {
    LewmTrainer(target_alone, data, *dir_ / "pixels_alone.pt", false);
    FAIL();
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--recon-weight"));
  }
  LewmConfig unknown = config;
  unknown.recon_target = "edges";
  EXPECT_THROW(LewmTrainer(unknown, data, *dir_ / "pixels_unknown.pt", false), AdaptError);
}

// Tests the grid's pixel term (--latent grid --recon-weight): each token redraws its own patch, so
// a token's change moves only the pixels under it; the term is scored and falls as the encoder
// trains, and the run resumes with its decoder.
TEST_F(LewmTest, GridPixelTermRedrawsEachTokensPatch) {
  {
    torch::manual_seed(0);
    PatchDecoder d(16, 8);
    const auto tokens = torch::randn({1, 16, 16});
    auto moved = tokens.clone();
    moved[0][5] += 1.0;  // token (1, 1): pixels 8..15 x 8..15
    torch::NoGradGuard no_grad;
    const auto a = d->forward(tokens), b = d->forward(moved);
    EXPECT_EQ((std::vector<int64_t>{1, 3, 32, 32}), a.sizes().vec());
    const auto changed = (a - b).abs().sum(1)[0] > 0;  // (32, 32)
    EXPECT_TRUE(changed.slice(0, 8, 16).slice(1, 8, 16).all().item<bool>());
    EXPECT_EQ(64, changed.sum().item<int64_t>()) << "only token (1, 1)'s 8x8 patch may change";
  }

  const VideoData data({*dir_ / "franka.h5"});
  LewmConfig config = Tiny();
  config.encoder.head = "grid";
  config.contrast_weight = 0;
  config.scene_weight = 0;
  config.recon_weight = 10.0;
  config.log_every = 10;  // the stats are the last 10 steps'
  LewmConfig early = config;
  early.steps = 10;
  const LewmStats first = LewmTrainer(early, data, *dir_ / "grid_pixels_early.pt", false).Train(false);
  EXPECT_GT(first.recon, 0.0);
  config.steps = 120;
  const fs::path out = *dir_ / "grid_pixels.pt";
  const LewmStats stats = LewmTrainer(config, data, out, false).Train(false);
  EXPECT_TRUE(std::isfinite(stats.loss));
  EXPECT_LT(stats.recon, 0.8 * first.recon);  // measured: 0.043 after 10 steps, 0.026 after 120
  LewmConfig more = config;
  more.steps = 122;
  EXPECT_EQ(122, LewmTrainer(more, data, out, true).Train(false).step);
}

// Tests the pixel term's high-pass target: a flat image is 0.5 everywhere, a bright dot on it stands
// out (its ring a little below 0.5), the plain target is the frame; an unknown target is refused.
TEST(ReconTargetTest, HighPassKeepsSmallThingsAndDropsFlatAreas) {
  auto flat = torch::full({1, 3, 16, 16}, 0.3);
  EXPECT_TRUE(torch::allclose(ReconTarget(flat, "highpass"), torch::full_like(flat, 0.5)));
  auto dot = flat.clone();
  dot.slice(2, 8, 9).slice(3, 8, 9).fill_(0.5);
  const auto target = ReconTarget(dot, "highpass");
  EXPECT_NEAR(0.5 + 2 * (0.5 - (0.3 * 24 + 0.5) / 25), target[0][0][8][8].item<double>(), 1e-5);
  EXPECT_LT(target[0][0][7][8].item<double>(), 0.5);
  EXPECT_NEAR(0.5, target[0][0][2][2].item<double>(), 1e-6);
  EXPECT_TRUE(torch::equal(dot, ReconTarget(dot, "rgb")));
  EXPECT_THROW(ReconTarget(dot, "edges"), AdaptError);
}

// Tests the multi-view positive: with --scene-camera each clip's positive is that camera's view of
// its last frame (not the anchors' camera's), the term trains; what cannot work is refused.
TEST_F(LewmTest, SceneCameraTakesThePositiveFromTheOtherView) {
  const VideoData two({Franka32("two_views.h5", 6, 8, [](collect::CollectConfig*c) { c->cameras = 2; })}), one({*dir_ / "franka.h5"});
  LewmConfig config = Tiny();
  config.scene_weight = 0.5;
  config.scene_camera = "camera1";
  config.steps = 5;
  LewmTrainer trainer(config, two, *dir_ / "views.pt", false);
  std::mt19937_64 rng(3), replay = rng;
  const LewmBatch batch = trainer.Batch("train", &rng);
  ASSERT_EQ((std::vector<int64_t>{8, 3, 32, 32}), batch.views.sizes().vec());
  const int length = config.clip_length(), k = config.frame_skip;
  for (int b = 0; b < 8; ++b) {
    const auto clip = two.DrawClip("train", length, k, &replay);
    auto view = two.Frames(*clip.episode, clip.start + (length - 1) * k, 1, "camera1");
    const auto expected = FramesToInput(torch::from_blob(view.data(), {1, 1, 32, 32, 3}, torch::kUInt8))[0][0];
    EXPECT_TRUE(torch::equal(expected, batch.views[b])) << "clip " << b;
    EXPECT_FALSE(torch::equal(batch.frames[b][length - 1], batch.views[b])) << "clip " << b;
  }
  LewmStats stats;
  EXPECT_TRUE(std::isfinite(trainer.Loss(batch, &stats, 0).item<double>()));
  EXPECT_GT(stats.scene, 0.0);
  EXPECT_TRUE(std::isfinite(trainer.Train(false).scene));
  // --scene-any-time: that camera's view of a frame drawn anywhere in the episode (after the clips).
  LewmConfig any = config;
  any.scene_any_time = true;
  LewmTrainer anywhere(any, two, *dir_ / "views_any.pt", false);
  std::mt19937_64 rng_any(4), replay_any = rng_any;
  const LewmBatch spread = anywhere.Batch("train", &rng_any);
  std::vector<VideoData::ClipRef> clips;
  for (int b = 0; b < 8; ++b) clips.push_back(two.DrawClip("train", length, k, &replay_any));
  int elsewhere = 0;
  for (int b = 0; b < 8; ++b) {
    const auto t = std::uniform_int_distribution<std::int64_t>(0, clips[b].episode->frames - 1)(replay_any);
    elsewhere += t != clips[b].start + (length - 1) * k;
    auto view = two.Frames(*clips[b].episode, t, 1, "camera1");
    const auto expected = FramesToInput(torch::from_blob(view.data(), {1, 1, 32, 32, 3}, torch::kUInt8))[0][0];
    EXPECT_TRUE(torch::equal(expected, spread.views[b])) << "clip " << b;
  }
  EXPECT_GE(elsewhere, 4);

  auto refused = [&](const LewmConfig& bad, const VideoData& data, const std::string& says) {
    try {
      LewmTrainer(bad, data, *dir_ / "refused.pt", false);
      ADD_FAILURE() << "not refused: " << says;
    } catch (const AdaptError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(says));
    }
  };
  refused(config, one, "no obs/camera1_image");
  LewmConfig same = config;
  same.scene_camera = "camera0";
  refused(same, two, "another camera");
  LewmConfig off = config;
  off.scene_weight = 0;
  refused(off, two, "--scene-weight");
  // --scene-any-time without --scene-camera: the anchor's own camera, at a frame drawn anywhere.
  LewmConfig own = Tiny();
  own.scene_weight = 0.5;
  own.scene_any_time = true;
  LewmTrainer own_camera(own, two, *dir_ / "views_own.pt", false);
  std::mt19937_64 rng_own(5), replay_own = rng_own;
  const LewmBatch own_views = own_camera.Batch("train", &rng_own);
  clips.clear();
  for (int b = 0; b < 8; ++b) clips.push_back(two.DrawClip("train", length, k, &replay_own));
  for (int b = 0; b < 8; ++b) {
    const auto t = std::uniform_int_distribution<std::int64_t>(0, clips[b].episode->frames - 1)(replay_own);
    auto view = two.Frames(*clips[b].episode, t, 1, "camera0");
    const auto expected = FramesToInput(torch::from_blob(view.data(), {1, 1, 32, 32, 3}, torch::kUInt8))[0][0];
    EXPECT_TRUE(torch::equal(expected, own_views.views[b])) << "clip " << b;
  }
  own.scene_weight = 0;
  refused(own, two, "--scene-weight");
}

// Tests clips drawn from several cameras (pretrain --camera camera0 camera1): each clip is one
// camera's frames, both cameras are drawn, one camera draws exactly as before, and a camera the data
// lacks is refused.
TEST_F(LewmTest, ClipCamerasDrawEachClipFromOneOfThem) {
  VideoData two({Franka32("clip_views.h5", 6, 8, [](collect::CollectConfig* c) { c->cameras = 2; })});
  const VideoData plain({*dir_ / "clip_views.h5"});
  EXPECT_EQ(two.clip_cameras(), std::vector<std::string>{"camera0"});
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 5; ++i) {  // one camera: no draw of a camera, the same clips as before
    const auto x = two.DrawClip("train", 3, 2, &a), y = plain.DrawClip("train", 3, 2, &b);
    EXPECT_EQ(x.episode->demo, y.episode->demo);
    EXPECT_EQ(x.start, y.start);
    EXPECT_EQ(x.camera, 0);
  }
  two.SetClipCameras({"camera0", "camera1"});
  std::mt19937_64 rng(8);
  int seen[2] = {0, 0};
  for (int i = 0; i < 24; ++i) {
    const auto clip = two.DrawClip("train", 3, 2, &rng);
    ASSERT_GE(clip.camera, 0);
    ASSERT_LT(clip.camera, 2);
    ++seen[clip.camera];
    EXPECT_EQ(two.ReadClip(clip, 3, 2),
              plain.dataset(0).ReadFrames(clip.episode->demo, clip.camera == 0 ? "camera0" : "camera1", clip.start, 3, nullptr, 2));
  }
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
  EXPECT_THROW(two.SetClipCameras({"camera0", "camera2"}), AdaptError);
  EXPECT_THROW(two.SetClipCameras({}), AdaptError);
}

// Tests --scene-groups: every second clip comes from another episode of the clip before's scene group
// (simcollect --layouts-per-scene), and data without groups, or no between-scene term, is refused.
TEST_F(LewmTest, SceneGroupsPairClipsOfOneScene) {
  const VideoData twins({Franka32("twins.h5", 8, 9, [](collect::CollectConfig*c) { c->layouts_per_scene = 2; })}), plain({*dir_ / "franka.h5"});
  ASSERT_TRUE(twins.HasSceneGroups());
  ASSERT_FALSE(plain.HasSceneGroups());
  LewmConfig config = Tiny();
  config.scene_weight = 0.5;
  config.scene_any_time = true;
  config.scene_groups = true;
  config.steps = 3;
  LewmTrainer trainer(config, twins, *dir_ / "groups.pt", false);
  std::mt19937_64 rng(6);
  const LewmBatch batch = trainer.Batch("train", &rng);
  // Episodes 0-7 make groups {0,1} ... {6,7}, all of them training episodes (index % 10 == 9 is held
  // out), so every second clip has a mate to come from.
  ASSERT_TRUE(twins.episodes("valid").empty());
  const auto& train = twins.episodes("train");
  // Validation batches of a split without episodes are drawn from the training episodes, mates too.
  const LewmBatch valid = trainer.Batch("valid", &rng);
  for (const LewmBatch* drawn : {&batch, &valid}) {
    for (int b = 1; b < 8; b += 2) {
      const EpisodeRef& before = train.at(drawn->episodes[b - 1].item<int64_t>());
      const EpisodeRef& mate = train.at(drawn->episodes[b].item<int64_t>());
      EXPECT_EQ(before.scene_group, mate.scene_group) << "clip " << b;
      EXPECT_NE(before.demo, mate.demo) << "clip " << b;
    }
  }
  EXPECT_EQ(twins.SceneGroupSize(), 2);
  EXPECT_EQ(plain.SceneGroupSize(), 1);
  LewmStats stats;
  EXPECT_TRUE(std::isfinite(trainer.Loss(batch, &stats, 0).item<double>()));
  EXPECT_GT(stats.scene, 0.0);
  try {
    LewmTrainer(config, plain, *dir_ / "refused.pt", false);
    ADD_FAILURE() << "data without scene groups not refused";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--layouts-per-scene"));
  }
  config.scene_weight = 0;
  try {
    LewmTrainer(config, twins, *dir_ / "refused.pt", false);
    ADD_FAILURE() << "--scene-groups without the between-scene term not refused";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--scene-weight"));
  }
}

// Tests --scene-groups on groups of four (simcollect --layouts-per-scene 4): the batch comes in runs of
// four clips from four different episodes of one scene group, so each anchor meets three layouts of
// its own scene among the negatives.
TEST_F(LewmTest, SceneGroupsOfFourMakeRunsOfFour) {
  const VideoData quads({Franka32("quads.h5", 8, 10, [](collect::CollectConfig* c) { c->layouts_per_scene = 4; })});
  ASSERT_EQ(quads.SceneGroupSize(), 4);
  LewmConfig config = Tiny();
  config.scene_weight = 0.5;
  config.scene_any_time = true;
  config.scene_groups = true;
  LewmTrainer trainer(config, quads, *dir_ / "quads.pt", false);
  std::mt19937_64 rng(3);
  const auto& train = quads.episodes("train");
  ASSERT_EQ(train.size(), 8u);  // groups {0..3} and {4..7}, all training episodes
  for (int draw = 0; draw < 3; ++draw) {
    const LewmBatch batch = trainer.Batch("train", &rng);
    for (int run = 0; run < config.batch; run += 4) {
      std::set<std::string> demos;
      for (int b = run; b < run + 4; ++b) {
        const EpisodeRef& e = train.at(batch.episodes[b].item<int64_t>());
        EXPECT_EQ(e.scene_group, train.at(batch.episodes[run].item<int64_t>()).scene_group) << "clip " << b;
        demos.insert(e.demo);
      }
      EXPECT_EQ(demos.size(), 4u) << "run at " << run << " repeats an episode";
    }
  }
}

// Tests the grid's per-token between-layout term (--scene-weight with --scene-groups): a run's clips
// come from one camera; where a group's clips look alike every token's choice is even (the term is
// log 4, chance), where they differ it is not; it trains; and what it needs is refused by name.
TEST_F(LewmTest, GridTokensTellTheLayoutsOfOneSceneApart) {
  const VideoData quads({Franka32("grid_quads.h5", 8, 10, [](collect::CollectConfig* c) { c->layouts_per_scene = 4; })});
  LewmConfig config = Tiny();
  config.encoder.head = "grid";
  config.contrast_weight = 0;
  config.scene_weight = 0.5;
  config.scene_groups = true;
  LewmTrainer trainer(config, quads, *dir_ / "grid_quads.pt", false);
  std::mt19937_64 rng(3);
  LewmBatch batch = trainer.Batch("train", &rng);
  LewmStats real, alike;
  trainer.Loss(batch, &real, 1);
  EXPECT_GT(std::abs(real.scene - std::log(4.0)), 1e-4) << "the layouts' tokens were told apart no better or worse than chance";
  for (int run = 0; run < config.batch; run += 4) {
    for (int b = run + 1; b < run + 4; ++b) batch.frames[b].copy_(batch.frames[run]);  // four copies of one clip
  }
  trainer.Loss(batch, &alike, 1);
  EXPECT_NEAR(alike.scene, std::log(4.0), 1e-4);
  const LewmStats trained = trainer.Train(false);
  EXPECT_TRUE(std::isfinite(trained.loss) && std::isfinite(trained.scene));

  LewmConfig bad = config;
  bad.scene_groups = false;
  try {
    LewmTrainer refused(bad, quads, *dir_ / "grid_bad.pt", false);
    FAIL() << "the per-token term ran without scene groups";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("it needs --scene-groups"));
  }
  bad = config;
  bad.scene_queue = 16;
  EXPECT_THROW(LewmTrainer(bad, quads, *dir_ / "grid_bad.pt", false), AdaptError);
  bad = config;
  bad.batch = 6;  // one run of four and a broken one
  try {
    LewmTrainer refused(bad, quads, *dir_ / "grid_bad.pt", false);
    FAIL() << "a batch of broken groups was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("whole scene groups"));
  }
  EXPECT_FALSE(fs::exists(*dir_ / "grid_bad.pt"));

  // Groups that act alike (simcollect --group-actions shared): a run's clips are from the same moment,
  // so they carry the same actions; groups that act apart do not.
  const VideoData alike_quads({Franka32("grid_alike_quads.h5", 8, 10, [](collect::CollectConfig* c) {
    c->layouts_per_scene = 4;
    c->group_actions = "shared";
  })});
  LewmTrainer alike_trainer(config, alike_quads, *dir_ / "grid_alike.pt", false);
  std::mt19937_64 alike_rng(3);
  const LewmBatch same = alike_trainer.Batch("train", &alike_rng);
  for (int run = 0; run < config.batch; run += 4) {
    for (int b = run + 1; b < run + 4; ++b) {
      EXPECT_TRUE(torch::equal(same.conditions[b], same.conditions[run])) << "clip " << b;
      EXPECT_FALSE(torch::equal(same.frames[b], same.frames[run])) << "clip " << b;
    }
  }
  bool apart = false;
  for (int b = 1; b < 4; ++b) apart = apart || !torch::equal(batch.conditions[b], batch.conditions[0]);
  EXPECT_TRUE(apart) << "groups that act apart gave one run the same actions";
}

// Tests the scene queue: oldest entries leave first, and `filled` counts the valid ones.
TEST(SceneQueueTest, KeepsTheNewestEntries) {
  SceneQueue queue(4, 2);
  queue->Push(torch::tensor({{1.0, 1.0}, {2.0, 2.0}, {3.0, 3.0}}, torch::kDouble), torch::tensor({1, 2, 3}, torch::kLong));
  EXPECT_EQ(3, queue->filled.item<int64_t>());
  queue->Push(torch::tensor({{4.0, 4.0}, {5.0, 5.0}}, torch::kDouble), torch::tensor({4, 5}, torch::kLong));
  EXPECT_EQ(4, queue->filled.item<int64_t>());
  EXPECT_TRUE(torch::equal(torch::tensor({2, 3, 4, 5}, torch::kLong), queue->episodes));
  EXPECT_TRUE(torch::allclose(torch::tensor({2.0, 3.0, 4.0, 5.0}, torch::kDouble), queue->entries.select(1, 0).to(torch::kDouble)));
}

}  // namespace
}  // namespace embody::adapt
