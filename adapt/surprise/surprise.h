// Violation of expectation (`surprise`): matched pairs of clips rendered in MuJoCo, one possible and
// one impossible, and the world model's surprise on each (the intuitive-physics test of V-JEPA,
// arXiv 2502.11831, on a robot world model).
//
// A pair shares the scene (one draw, as simcollect draws one), the camera and the arm's actions (the
// impossible clip replays the possible clip's actions open loop); the clips differ only from the
// violation's control step on, and only in one object:
//   permanence  the object disappears while in view (or, alternately, appears from nothing);
//               possible: it stays where it is.
//   solidity    the object falls through the table (its collisions switched off); possible: it stays.
//   continuity  the arm pushes the object (possible); impossible: the same displacement, the same
//               path, but starting before anything touches it (the possible trajectory shifted 0.4-0.6 s
//               earlier): the same amount of motion, so a detector of change sees the same in both.
//   gravity     the object is held in the air and released: possible, it falls; impossible, it falls
//               upward (the possible trajectory mirrored about the release height: the same motion,
//               so again the same amount of change).
// Where the motion is not physics (hidden, shifted, mirrored, held) the object is posed kinematically
// before each recorded frame, its collisions off.
//
// Surprise of a clip: at every model step t (frames k apart, k = the model's frame skip), the
// prediction of frame t from the true latents of the `context` frames before it (with their proprio
// and actions: teacher forcing) against the observed latent, mean |.| over the latent; a clip's
// surprise is the mean (headline) or max over t. Baselines in the same run: copy-last (the latent
// change itself) and raw pixel change; and an oracle that predicts with MuJoCo itself (the physics
// the violations break), which shows what a perfect predictor scores.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "adapt/encoder/encoder.h"
#include "adapt/world_model/world_model.h"
#include "collect/episode.h"

namespace embody::adapt {

enum class Violation { kPermanence, kSolidity, kContinuity, kGravity };
std::string ViolationName(Violation v);
/// @throws AdaptError naming the bad value and the known ones.
Violation ParseViolation(const std::string& name);
const std::vector<Violation>& AllViolations();

/// A matched pair of clips: recorded episodes (frames of camera 0, proprio, objects, states, actions).
struct SurprisePair {
  std::int64_t index = 0;
  Violation type = Violation::kPermanence;
  std::string variant;  ///< disappear | appear | through_table | moves_before_contact | falls_upward
  int object = -1;      ///< the object's body id
  std::string object_name;
  int violation_step = 0;  ///< the first control step (frame) at which the clips differ
  int attempts = 1;        ///< 1 + scene draws discarded (object out of view, a push that moved nothing)
  collect::EpisodeData possible, impossible;
};

/// Renders pairs in scenes drawn like simcollect's (one camera unless set_views, a seed of its own).
class ViolationGenerator {
 public:
  /// `model_step`: control steps per model step (violations start at least three model steps in and
  /// end at least three before the clip does). @throws AdaptError for an embodiment that is not an arm
  /// or a scene without objects; CollectError/SimError from the scene.
  ViolationGenerator(const std::string& robot, const collect::RandomizationConfig& randomization, int image_size, std::uint64_t seed, int steps = 60,
                     int model_step = 4);

  /// Pair `index` of `type`, deterministic in (seed, index, type). A draw that cannot show the
  /// violation is redrawn (attempt 1, 2, ...). @throws AdaptError after 20 draws.
  SurprisePair Generate(std::int64_t index, Violation type);

  /// The physics oracle's surprise along a clip of the last generated pair: at every model step t
  /// (frames k = the model's frame skip apart), MuJoCo with the scene's true model steps the recorded state of frame t - 1 through
  /// the recorded actions, and the surprise is the objects' mean position error (m) against frame t. It
  /// knows the physics the violations break, so it tells every pair apart: the test is well posed.
  std::vector<double> PhysicsSurprise(const collect::EpisodeData& clip, int k);

  /// Cameras each clip records (camera0 .. camera<n-1>, placed as simcollect --cameras n places
  /// them), for a world model of several views; 1 by default. The scenes are the same for every n
  /// (further cameras come from a stream of their own); the violations are matched on camera 0.
  void set_views(int n);
  /// Also records the camera on the hand (robot0_eye_in_hand, as simcollect --eye-in-hand does), for a
  /// model that reads it. @throws CollectError for a robot with no camera on its hand.
  void set_hand_camera(bool on);
  collect::EpisodeRunner& runner() { return *runner_; }
  /// The scenes' configuration (robot, image size, cameras, seed, randomization, clip steps).
  const collect::CollectConfig& config() const { return config_; }
  int steps() const { return config_.steps; }
  double table_top() const { return runner_->scene().table_top; }

 private:
  bool Try(std::int64_t index, Violation type, int attempt, SurprisePair* pair);

  collect::CollectConfig config_;
  std::unique_ptr<collect::EpisodeRunner> runner_;
  int model_step_ = 4;
};

/// Surprise curves of one clip, one value per model step t = 1 .. M-1 (frame t * frame_skip).
struct SurpriseCurves {
  std::vector<double> model, copy_last, pixel;
  std::vector<double> physics;  ///< ViolationGenerator::PhysicsSurprise's (filled by RunSurprise)
};

/// The world model's prediction error along a clip, and the baselines'.
class SurpriseScorer {
 public:
  /// @throws AdaptError when the model has no such embodiment.
  SurpriseScorer(WorldModel& model, FrozenEncoder& encoder, const std::string& embodiment, int context = 0);
  /// @throws AdaptError when the clip's image size or action size is not the model's.
  SurpriseCurves Score(const collect::EpisodeData& clip);
  int frame_skip() const { return model_.config().frame_skip; }

 private:
  WorldModel& model_;
  FrozenEncoder& encoder_;
  std::string embodiment_;
  int context_;
};

/// Fraction of pairs whose impossible clip scores higher than its possible partner (ties count half).
/// @throws AdaptError when the lists differ in length or are empty.
double PairwiseAccuracy(const std::vector<double>& impossible, const std::vector<double>& possible);
/// Area under the ROC curve of telling impossible (positive) from possible clips by score (the
/// Mann-Whitney statistic; ties count half). @throws AdaptError when either list is empty.
double Auroc(const std::vector<double>& positive, const std::vector<double>& negative);

struct SurpriseRunOptions {
  std::string embodiment = "franka";
  std::string robot;  ///< the scene's robot for robots::FindEmbodiment (a descriptor path); empty: embodiment
  int pairs = 100;    ///< spread evenly over `types`
  std::vector<Violation> types = AllViolations();
  std::uint64_t seed = 3000;  ///< scene seed: apart from the training data's and plan's
  collect::RandomizationConfig randomization = collect::RandomizationConfig::All(collect::Level::kLight);
  int steps = 60;   ///< control steps per clip (3 s at 20 Hz)
  int context = 0;  ///< the predictor's (0: the model's)
  /// A clip's score: "mean" (the per-model-step surprise averaged over the clip) or "max". Mean is
  /// the headline: a pair's clips are identical before the violation, so with the mean only the
  /// frames that differ decide the comparison, while with the max an arm-motion error larger than
  /// the violation's masks it (both are reported).
  std::string score = "mean";
  std::filesystem::path clips;  ///< when set, the clips are written there as a dataset
};

/// Generates, scores and summarizes (pairwise_accuracy, auroc, pairs, baselines.{copy_last,pixel},
/// by_type, per-pair detail). @throws AdaptError on a model/encoder/embodiment mismatch.
nlohmann::json RunSurprise(WorldModel& model, const std::string& model_encoder_hash, FrozenEncoder& encoder, const SurpriseRunOptions& options,
                           const std::function<void(const std::string&)>& log = {});

}  // namespace embody::adapt
