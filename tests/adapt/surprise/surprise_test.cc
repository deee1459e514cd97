// Tests for violation-of-expectation (adapt/surprise/surprise.cc): every violation type makes its intended
// state change and nothing else, pairs share scene, actions and camera, the scores on known values,
// and a whole run end to end (an untrained predictor is exactly as surprised as copy-last; MuJoCo as
// the predictor tells every pair apart).
#include "adapt/surprise/surprise.h"

#include <algorithm>
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"
#include "collect/dataset.h"
#include "tests/adapt/tiny.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

collect::RandomizationConfig Light() { return collect::RandomizationConfig::All(collect::Level::kLight); }

struct P3 {
  double x, y, z;
};
P3 Object(const collect::EpisodeData& clip, int slot, int t) {
  const float* o = clip.object.data() + static_cast<size_t>(t) * clip.object_dim + 7 * slot;
  return {o[0], o[1], o[2]};
}
P3 Ee(const collect::EpisodeData& clip, int t) { return {clip.eef_pos[3 * t], clip.eef_pos[3 * t + 1], clip.eef_pos[3 * t + 2]}; }
double Dist(const P3& a, const P3& b) { return std::sqrt((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y) + (a.z - b.z) * (a.z - b.z)); }
double Horizontal(const P3& a, const P3& b) { return std::hypot(a.x - b.x, a.y - b.y); }
std::vector<std::uint8_t> Frame(const collect::EpisodeData& clip, int t) {
  const size_t n = static_cast<size_t>(clip.image_size) * clip.image_size * 3;
  return std::vector<std::uint8_t>(clip.images[0].begin() + t * n, clip.images[0].begin() + (t + 1) * n);
}

TEST(ViolationTest, EachTypeMakesItsStateChangeInASharedSceneWithSharedActionsAndCamera) {
  constexpr int kSteps = 48;
  ViolationGenerator gen("franka", Light(), 64, 21, kSteps, 4);
  const double table = gen.table_top();
  const auto& objects = gen.runner().scene().object_bodies;
  // Indices 0-3 cycle through the types as a run does; 4 is permanence's other variant (appear).
  const std::vector<std::pair<int, Violation>> cases = {
      {0, Violation::kPermanence}, {1, Violation::kSolidity}, {2, Violation::kContinuity}, {3, Violation::kGravity}, {4, Violation::kPermanence}};
  for (const auto& [index, type] : cases) {
    SCOPED_TRACE(ViolationName(type) + " pair " + std::to_string(index));
    const SurprisePair pair = gen.Generate(index, type);
    const auto& pos = pair.possible;
    const auto& imp = pair.impossible;
    const int slot = static_cast<int>(std::find(objects.begin(), objects.end(), pair.object) - objects.begin());
    ASSERT_LT(slot, static_cast<int>(objects.size()));
    const int tv = pair.violation_step;
    ASSERT_GE(tv, 8);  // at least two model steps before it
    ASSERT_LT(tv, kSteps - 8);
    // Shared: the scene draw, every action, the camera.
    EXPECT_EQ(pos.draw, imp.draw);
    EXPECT_EQ(pos.actions, imp.actions);
    EXPECT_EQ(pos.extrinsics, imp.extrinsics);
    EXPECT_EQ(pos.intrinsics, imp.intrinsics);
    ASSERT_EQ(pos.steps, kSteps);
    ASSERT_EQ(imp.steps, kSteps);
    EXPECT_EQ(imp.extra_attrs["violation_frame"], tv);
    EXPECT_EQ(imp.extra_attrs["possible"], 0);
    EXPECT_EQ(pos.extra_attrs["possible"], 1);
    // The clips differ from the violation on (before it, for an object that appears at it).
    bool differ = false;
    const bool appear = pair.variant == "appear";
    for (int t = appear ? 0 : tv; t < (appear ? tv : kSteps) && !differ; ++t) differ = Frame(pos, t) != Frame(imp, t);
    EXPECT_TRUE(differ);
    const P3 rest = Object(pos, slot, tv);
    switch (type) {
      case Violation::kPermanence:
        if (pair.variant == "disappear") {
          for (int t = 0; t < tv; ++t) ASSERT_EQ(Frame(pos, t), Frame(imp, t)) << "frame " << t << " before the violation";
          for (int t = tv; t < kSteps; ++t) {
            ASSERT_LT(Object(imp, slot, t).z, -5) << "frame " << t << ": the object should be gone";
            ASSERT_LT(Dist(Object(pos, slot, t), rest), 0.02) << "frame " << t << ": the possible object stays";
          }
        } else {
          EXPECT_EQ(pair.variant, "appear");
          for (int t = 0; t < tv; ++t) ASSERT_LT(Object(imp, slot, t).z, -5) << "frame " << t << ": not there yet";
          EXPECT_LT(Dist(Object(imp, slot, tv), rest), 1e-4);  // it appears where the possible one is
          for (int t = tv; t < kSteps; ++t) ASSERT_GT(Object(imp, slot, t).z, table - 0.01) << "frame " << t;
        }
        break;
      case Violation::kSolidity:
        for (int t = 0; t < tv; ++t) ASSERT_EQ(Frame(pos, t), Frame(imp, t)) << "frame " << t << " before the violation";
        EXPECT_LT(Object(imp, slot, kSteps - 1).z, table - 0.1);   // below the table top: through it
        EXPECT_GT(Object(pos, slot, kSteps - 1).z, table - 0.01);  // the table holds the possible one
        break;
      case Violation::kContinuity: {
        // The push moves the object >= 3 cm; the impossible clip has the same path, earlier, and its
        // motion starts while the hand is farther from the object than when the push touches it.
        EXPECT_GE(Horizontal(Object(pos, slot, kSteps - 1), Object(pos, slot, 0)), 0.03);
        int onset = 0;
        while (Horizontal(Object(pos, slot, onset), Object(pos, slot, 0)) < 0.005) ++onset;
        const int shift = onset - tv;
        EXPECT_GE(shift, 8);
        EXPECT_LE(shift, 12);
        for (int t = 0; t + shift < kSteps; ++t) ASSERT_LT(Dist(Object(imp, slot, t), Object(pos, slot, t + shift)), 1e-5) << "frame " << t;
        EXPECT_LT(Horizontal(Object(imp, slot, tv - 1), Object(imp, slot, 0)), 0.005);
        EXPECT_GE(Horizontal(Object(imp, slot, tv), Object(imp, slot, 0)), 0.005);
        EXPECT_GT(Dist(Ee(imp, tv), Object(imp, slot, tv)), Dist(Ee(pos, onset), Object(pos, slot, onset)) + 0.02);
        break;
      }
      case Violation::kGravity: {
        for (int t = 0; t < tv; ++t) ASSERT_EQ(Frame(pos, t), Frame(imp, t)) << "frame " << t << " before the violation";
        const double held = Object(pos, slot, tv - 1).z;                                                    // the last frame it is held
        EXPECT_GT(held, table + 0.05);                                                                      // held in the air until release
        EXPECT_LT(Object(pos, slot, kSteps - 1).z, held - 0.05);                                            // falls
        EXPECT_GT(Object(imp, slot, kSteps - 1).z, held + 0.05);                                            // falls upward,
        EXPECT_NEAR(Object(imp, slot, kSteps - 1).z - held, held - Object(pos, slot, kSteps - 1).z, 1e-5);  // by as much
        break;
      }
    }
  }
  // Deterministic in (seed, index, type).
  const SurprisePair a = gen.Generate(2, Violation::kContinuity);
  gen.Generate(0, Violation::kGravity);
  const SurprisePair b = gen.Generate(2, Violation::kContinuity);
  EXPECT_EQ(a.impossible.images, b.impossible.images);
  EXPECT_EQ(a.possible.states, b.possible.states);
}

TEST(SurpriseScoreTest, PairwiseAccuracyAndAurocOnKnownValues) {
  // Right, tie (half), wrong, right.
  EXPECT_DOUBLE_EQ(PairwiseAccuracy({3, 2, 1, 5}, {1, 2, 3, 4}), 0.625);
  EXPECT_DOUBLE_EQ(PairwiseAccuracy({9, 9}, {1, 1}), 1.0);
  // 3 > 1, 3 > 2, 3 < 4, 2 > 1, 2 = 2 (half), 2 < 4: 3.5 of 6.
  EXPECT_DOUBLE_EQ(Auroc({3, 2}, {1, 2, 4}), 3.5 / 6);
  EXPECT_DOUBLE_EQ(Auroc({5, 6}, {1, 2}), 1.0);
  EXPECT_DOUBLE_EQ(Auroc({1, 2}, {5, 6}), 0.0);
  EXPECT_THROW(PairwiseAccuracy({1, 2}, {1}), AdaptError);
  EXPECT_THROW(PairwiseAccuracy({}, {}), AdaptError);
  EXPECT_THROW(Auroc({}, {1}), AdaptError);
}

// An untrained world model (its predictor is exactly copy-last) on a random encoder: the run works end
// to end, its surprise equals copy-last's frame for frame (so the curves are aligned right), the clips
// dataset says what each clip is, and mismatches are refused.
TEST(SurpriseRunTest, UntrainedModelIsCopyLastAndTheClipsAreADataset) {
  ViolationGenerator probe("franka", Light(), 64, 5, 48, 4);
  const EmbodimentSpec spec = tiny::FrankaSpec(probe.runner());
  const PredictorConfig pc = tiny::SmallPredictor(4);
  WorldModel model = tiny::Untrained(pc, spec);
  FrozenEncoder encoder = FrozenEncoder::Random({64, 8, 16, "vector", 32}, 4);

  const fs::path dir = fs::temp_directory_path() / ("embody_surprise_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  SurpriseRunOptions o;
  o.pairs = 4;
  o.seed = 5;
  o.steps = 48;
  o.clips = dir / "clips.h5";
  const auto r = RunSurprise(model, encoder.hash(), encoder, o);
  for (const char* key : {"pairwise_accuracy", "auroc", "pairs"}) ASSERT_TRUE(r.contains(key) && r[key].is_number()) << key;
  ASSERT_TRUE(r["baselines"]["copy_last"]["pairwise_accuracy"].is_number());
  ASSERT_TRUE(r["baselines"]["pixel"]["pairwise_accuracy"].is_number());
  for (const char* type : {"permanence", "solidity", "continuity", "gravity"}) ASSERT_TRUE(r["by_type"][type].is_number()) << type;
  EXPECT_EQ(r["pairs"], 4);
  ASSERT_EQ(r["per_pair"].size(), 4u);
  for (const auto& pair : r["per_pair"]) {
    for (const char* clip : {"possible", "impossible"}) {
      const auto model_curve = pair[clip]["model"].get<std::vector<double>>();
      const auto copy_curve = pair[clip]["copy_last"].get<std::vector<double>>();
      ASSERT_EQ(model_curve.size(), 11u);  // model frames 1..11 of 12 (48 steps, 4 per model step)
      for (size_t t = 0; t < model_curve.size(); ++t) EXPECT_NEAR(model_curve[t], copy_curve[t], 1e-5) << clip << " step " << t;
    }
  }
  EXPECT_DOUBLE_EQ(r["pairwise_accuracy"].get<double>(), r["baselines"]["copy_last"]["pairwise_accuracy"].get<double>());
  // The test is well posed: MuJoCo as the predictor tells every impossible clip from its partner, and
  // a possible clip is physics (but for gravity's hold before the release, the same in both clips).
  EXPECT_DOUBLE_EQ(r["oracle"]["pairwise_accuracy"].get<double>(), 1.0);
  for (const auto& pair : r["per_pair"]) {
    if (pair["type"] == "gravity") continue;
    for (double e : pair["possible"]["physics"].get<std::vector<double>>()) EXPECT_LT(e, 1e-3) << pair["type"];
  }

  // The clips: a dataset in the collection layout, two demos per pair, each saying what it is.
  const collect::Dataset ds(o.clips);
  ASSERT_EQ(ds.demos().size(), 8u);
  for (int d = 0; d < 8; ++d) {
    const std::string demo = collect::DemoName(d);
    EXPECT_EQ(ds.IntAttr(demo, "possible"), d % 2 == 0 ? 1 : 0);
    EXPECT_EQ(ds.IntAttr(demo, "pair"), d / 2);
    EXPECT_EQ(ds.StringAttr(demo, "violation"), r["per_pair"][d / 2]["type"].get<std::string>());
    EXPECT_EQ(ds.IntAttr(demo, "violation_frame"), r["per_pair"][d / 2]["violation_frame"].get<int>());
    EXPECT_EQ(ds.Read<float>(demo, "surprise_model").size(), 11u);
    EXPECT_EQ(ds.NumSamples(demo), 48);
  }
  // Deterministic.
  o.clips.clear();
  EXPECT_EQ(RunSurprise(model, encoder.hash(), encoder, o)["per_pair"], r["per_pair"]);

  try {
    RunSurprise(model, "0123abcd", encoder, o);
    FAIL() << "an encoder the model was not trained on was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("0123abcd"));
  }
  o.embodiment = "ur5";
  try {
    RunSurprise(model, encoder.hash(), encoder, o);
    FAIL() << "a model of another embodiment was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("for franka, not ur5"));
  }
  o.embodiment = "franka";
  o.score = "median";
  EXPECT_THROW(RunSurprise(model, encoder.hash(), encoder, o), AdaptError);
  EXPECT_THROW(ViolationGenerator("humanoid", Light(), 64, 1), AdaptError);
  EXPECT_THROW(ParseViolation("levitation"), AdaptError);

  // A model of two cameras: the clips record both, the same pairs on camera 0 (the scenes and the
  // violations unchanged), the untrained model is copy-last over both views' tokens, and the pixel
  // baseline stays camera 0's. Cameras out of order are refused.
  o.score = "max";
  o.pairs = 2;
  o.clips = dir / "clips2.h5";
  PredictorConfig two = pc;
  two.tokens = 2;
  two.cameras = {"camera0", "camera1"};
  WorldModel model2 = tiny::Untrained(two, spec);
  const auto r2 = RunSurprise(model2, encoder.hash(), encoder, o);
  for (int i = 0; i < 2; ++i) {
    const auto& pair = r2["per_pair"][i];
    EXPECT_EQ(pair["type"], r["per_pair"][i]["type"]);
    EXPECT_EQ(pair["violation_frame"], r["per_pair"][i]["violation_frame"]);
    for (const char* clip : {"possible", "impossible"}) {
      EXPECT_EQ(pair[clip]["pixel"], r["per_pair"][i][clip]["pixel"]) << clip;  // camera 0 pixel for pixel
      const auto model_curve = pair[clip]["model"].get<std::vector<double>>(), copy_curve = pair[clip]["copy_last"].get<std::vector<double>>();
      for (size_t t = 0; t < model_curve.size(); ++t) EXPECT_NEAR(model_curve[t], copy_curve[t], 1e-5) << clip << " step " << t;
      EXPECT_NE(pair[clip]["copy_last"], r["per_pair"][i][clip]["copy_last"]) << clip;  // camera 1's tokens count too
    }
  }
  const collect::Dataset clips2(o.clips);
  std::vector<hsize_t> dims;
  clips2.ReadFrames(collect::DemoName(0), "camera1", 0, 1, &dims);
  EXPECT_EQ(dims[1], 64u);
  two.cameras = {"camera1", "camera0"};
  WorldModel swapped = tiny::Untrained(two, spec);
  try {
    RunSurprise(swapped, encoder.hash(), encoder, o);
    FAIL() << "a model of cameras out of order was accepted";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("surprise records cameras camera0, camera1, ... in order"));
  }
  // A model of camera 0 and the hand's camera: the clips record the hand's too (robomimic's key), the
  // same pairs on camera 0, copy-last over both views' tokens.
  two.cameras = {"camera0", "robot0_eye_in_hand"};
  WorldModel hand = tiny::Untrained(two, spec);
  o.clips = dir / "clips_hand.h5";
  const auto r3 = RunSurprise(hand, encoder.hash(), encoder, o);
  for (int i = 0; i < 2; ++i) {
    const auto& pair = r3["per_pair"][i];
    EXPECT_EQ(pair["violation_frame"], r["per_pair"][i]["violation_frame"]);
    for (const char* clip : {"possible", "impossible"}) {
      EXPECT_EQ(pair[clip]["pixel"], r["per_pair"][i][clip]["pixel"]) << clip;
      EXPECT_NE(pair[clip]["copy_last"], r["per_pair"][i][clip]["copy_last"]) << clip;   // the hand's tokens count too
      EXPECT_NE(pair[clip]["copy_last"], r2["per_pair"][i][clip]["copy_last"]) << clip;  // and they are not camera 1's
    }
  }
  const collect::Dataset clips_hand(o.clips);
  clips_hand.ReadFrames(collect::DemoName(0), "robot0_eye_in_hand", 0, 1, &dims);
  EXPECT_EQ(dims[1], 64u);
  EXPECT_TRUE(clips_hand.CameraMoves(collect::DemoName(0), "robot0_eye_in_hand"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace embody::adapt
