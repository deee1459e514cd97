// Stage two's data, training and evaluation (`adapt`).
//
// Data: a simcollect dataset of one embodiment plus its latent cache for the frozen encoder.
// Each episode is read from the files on first use and kept in memory (its latents, proprio, actions
// and camera), as long as the whole dataset would fit in StageTwoData::kKeepBytes; a larger one is
// read window by window every time (memory then does not grow with it). Latents are
// layer-normalized per token, as V-JEPA 2-AC does with its encoder outputs, and every error below
// is measured in that space, for the model and the copy-last baseline alike.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "adapt/core/distributed.h"
#include "adapt/world_model/readout.h"
#include "adapt/world_model/world_model.h"
#include "collect/dataset.h"

namespace embody::adapt {

/// The pose (16 numbers) an episode's camera gives the camera token: a fixed camera's extrinsics; for
/// one that moves with the hand (a pose per frame), its pose on the hand (PoseOnHand at the first frame).
/// @throws collect::DatasetError, AdaptError.
std::vector<double> CameraTokenPose(const collect::Dataset& dataset, const std::string& demo, const std::string& camera);

/// One embodiment's dataset with the latent cache of a frozen encoder.
class StageTwoData {
 public:
  /// Episodes are kept in memory once read while the dataset's latents, proprio and actions take at
  /// most this many bytes (in the training precision, DefaultFloat()) by default.
  static constexpr std::int64_t kKeepBytes = std::int64_t{1} << 30;

  struct Episode {
    std::string demo, task;
    std::int64_t frames = 0;
    bool success = false;
  };
  /// A window of consecutive frames: latents (T, N, D), proprio (T, P), actions (T, A), camera (12),
  /// and, for the dynamics model, every transition of the window's episode (M, P), (M, A), (M, P)
  /// (read anyway with the window; stacking windows concatenates them).
  struct Window {
    torch::Tensor latents, proprio, actions, camera;
    torch::Tensor dyn_proprio, dyn_actions, dyn_next;
  };

  /// `max_train_episodes` > 0 keeps only the first that many training episodes. Every episode is
  /// checked, with `check_frames` its frames read back too (pass false only when this process has just
  /// read every frame itself, as building the latent cache does).
  /// @throws AdaptError when files are missing or inconsistent.
  /// `keep_bytes`: the most the episodes may take in memory (kKeepBytes; 0 = read every window from the files).
  StageTwoData(const std::filesystem::path& dataset, const std::filesystem::path& cache, const std::string& camera = "camera0",
               int max_train_episodes = 0, bool check_frames = true, std::int64_t keep_bytes = kKeepBytes);
  /// Several cameras (a model that reads several views): one latent cache per camera, in the same
  /// order; a frame's latents are every camera's tokens in turn (N = cameras x each one's tokens) and
  /// a window's camera features every camera's 12 numbers. The first camera is camera(): its frames
  /// are Frames() and the read-outs' image plane.
  StageTwoData(const std::filesystem::path& dataset, const std::vector<std::filesystem::path>& caches, const std::vector<std::string>& cameras,
               int max_train_episodes = 0, bool check_frames = true, std::int64_t keep_bytes = kKeepBytes);

  const EmbodimentSpec& spec() const { return spec_; }
  const std::vector<Episode>& episodes(const std::string& split) const { return split == "valid" ? valid_ : train_; }
  int tokens() const { return tokens_; }          ///< N per frame, all cameras together
  int image_size() const { return image_size_; }  ///< side of the encoder camera's frames, in pixels
  int latent_dim() const { return latent_dim_; }
  const std::string& encoder_hash() const { return encoder_hash_; }
  const std::filesystem::path& path() const { return path_; }

  /// `count` frames of an episode, `stride` control steps apart from `first` (model steps of
  /// stride control steps): latents and proprio of those frames, and per frame the `stride` actions
  /// that follow it, concatenated (count, stride A; zeros past the episode's end).
  Window Read(const Episode& episode, std::int64_t first, std::int64_t count, int stride = 1) const;
  /// The same frames, model steps of `stride`, cut from a whole episode already read (`Read(episode,
  /// 0, frames)`): no file access. Leaves the dynamics fields empty.
  static Window Strided(const Window& episode, std::int64_t first, std::int64_t count, int stride);
  /// A window's place: its episode and first frame.
  struct Draw {
    const Episode* episode = nullptr;
    std::int64_t first = 0;
  };
  /// `n` windows of `count` frames `stride` apart drawn uniformly from `split` (an episode, then a
  /// first frame): the training batches' draws. @throws AdaptError if an episode is too short.
  std::vector<Draw> DrawWindows(const std::string& split, int n, int count, int stride, std::mt19937_64* rng) const;
  /// Proprio of a whole episode (frames, P): [joint_pos, joint_vel, eef_pos, eef_quat, gripper].
  torch::Tensor Proprio(const Episode& episode) const;
  /// Recorded frames [first, first + count) of the encoder's camera, (count, S, S, 3) uint8.
  std::vector<std::uint8_t> Frames(const Episode& episode, std::int64_t first, std::int64_t count, int* image_size = nullptr) const;
  /// Mean |z_{t+stride} - z_t| of the (layer-normalized) latents over up to `max_episodes` training episodes.
  double LatentDeltaScale(int stride = 1, int max_episodes = 50) const;
  /// Control steps per second (the dataset's control_hz).
  double control_hz() const { return control_hz_; }
  const collect::Dataset& dataset() const { return *dataset_; }
  const std::string& camera() const { return cameras_.front(); }
  const std::vector<std::string>& cameras() const { return cameras_; }
  /// Proprio and proprio-change statistics over (up to `max_episodes`) training episodes.
  Normalizer ComputeNormalizer(int max_episodes = 200) const;
  /// Whether this dataset's episodes are kept in memory (see the constructor's keep_bytes).
  bool keeps_episodes() const { return keep_; }

 private:
  std::filesystem::path path_;
  std::vector<std::filesystem::path> cache_paths_;
  std::unique_ptr<collect::Dataset> dataset_;
  std::vector<collect::h5::Handle> caches_;
  std::vector<std::string> cameras_;
  std::string encoder_hash_;
  EmbodimentSpec spec_;
  std::vector<Episode> train_, valid_;
  int tokens_ = 0, tokens_per_view_ = 0, latent_dim_ = 0, image_size_ = 0;
  double control_hz_ = 20;
  /// An episode as Read uses it: layer-normalized latents of frames [first, first + count) (count,
  /// N, D), and for the whole episode proprio (T, P), actions (T, A) and camera features (12).
  struct Whole {
    torch::Tensor latents, proprio, actions, camera;
  };
  Whole ReadEpisode(const Episode& episode, std::int64_t first, std::int64_t count) const;
  /// The whole episode from memory (read from the files on first use).
  Whole Kept(const Episode& episode) const;
  bool keep_ = false;
  mutable std::mutex kept_mutex_;
  mutable std::map<std::string, Whole> kept_;
};

/// `adapt --init`'s trunk learning-rate scale unless --trunk-lr-scale is given. Measured on ur5 from
/// franka, 50 episodes (README "Transfer"): the imagined ee error at 2 s falls from 6.05 px at 1 to 5.54
/// at 0.3, 5.21 at 0.1 and 5.25 at 0.03 (7.40 from scratch), at 1 s from 6.09 to 6.00 (6.93).
inline constexpr double kInitTrunkLrScale = 0.1;

struct AdaptConfig {
  PredictorConfig predictor;
  int batch = 32;
  int steps = 3000;
  double lr = 5e-4, weight_decay = 0.05;
  double warmup = 0.05, decay = 0.2;   ///< fractions of the steps: linear warmup, constant, linear decay to 0
  int rollout = 2;                     ///< rollout steps in the multi-step loss (model fed its own predictions)
  int eval_every = 250, patience = 4;  ///< early stopping: stop after `patience` evaluations without improvement
  int val_batches = 4;
  bool freeze_trunk = false;
  /// The trunk's learning rate as a fraction of `lr` (the per-embodiment parts keep `lr`): below 1,
  /// a start from another robot's model (--init) keeps more of its trunk while the new parts learn.
  double trunk_lr_scale = 1;
  int threads = 0;
  std::string device = "cpu";  ///< where training runs (torch::Device syntax); not part of the run's identity
  bool bf16 = false;           ///< forward passes autocast to bfloat16 (`--precision bf16`); not part of the run's identity
  std::uint64_t seed = 0;
  nlohmann::json ToJson() const;  ///< the fields that define the training run (not threads)
  static AdaptConfig FromJson(const nlohmann::json& j);
};
// With defaults: a run recorded before a field existed reads as that field's default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AdaptConfig, predictor, batch, steps, lr, weight_decay, warmup, decay, rollout, eval_every, patience,
                                                val_batches, freeze_trunk, trunk_lr_scale, seed)

struct TrainStats {
  int step = 0, best_step = 0;
  double loss = 0, val_loss = 0, best_val = 0, samples_per_s = 0;
  bool early_stopped = false;
  std::vector<std::array<double, 3>> history;  ///< (step, train loss, validation loss)
};

/// Losses of one batch: latent teacher forcing and latent rollout, each as L1 relative to the
/// copy-last L1 of the same batch (scale-free: 1 = no better than copying the last frame), and the
/// dynamics model's L1 on normalized proprio changes.
struct AdaptLosses {
  torch::Tensor teacher, rollout, dynamics;
  torch::Tensor total() const { return teacher + rollout + dynamics; }
};

/// The losses of one batch of windows of `context + 1` frames (training and adapt --bench).
/// With a data-parallel `group`, `w` is this rank's equal share and the losses are such that
/// their average over the ranks is the global batch's (normalizers reduced over the ranks).
/// `bf16`: the model's forward passes autocast to bfloat16 (the losses stay float32).
AdaptLosses StageTwoLosses(WorldModel& model, const std::string& embodiment, const StageTwoData::Window& w, int context, int rollout,
                           const DataParallel* group = nullptr, bool bf16 = false);

/// Trains a WorldModel on one embodiment. Keeps <out>/model.pt (best validation) and
/// <out>/train_state.pt (latest, for --resume), both written atomically.
///
/// With a data-parallel `group` every rank runs the trainer: `config.batch` is the global batch, each
/// rank reads its share of every batch, gradients are averaged, all ranks validate alike (the same
/// early-stopping decisions) and rank 0 alone writes.
class StageTwoTrainer {
 public:
  StageTwoTrainer(const AdaptConfig& config, const StageTwoData& data, WorldModel model, const std::filesystem::path& out, bool resume,
                  const DataParallel* group = nullptr);
  TrainStats Train(bool verbose = true);
  /// This rank's share of a random global batch of windows of `context + 1` frames from a split.
  StageTwoData::Window Batch(const std::string& split, std::mt19937_64* rng) const;
  AdaptLosses Losses(const StageTwoData::Window& w);
  double Validate();
  WorldModel& model() { return model_; }

 private:
  void SaveState(const TrainStats& stats) const;
  double LearningRate(int step) const;

  AdaptConfig config_;
  const StageTwoData& data_;
  WorldModel model_;
  std::filesystem::path out_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<double> group_lr_scales_;  ///< per optimizer group, its share of the scheduled rate
  std::mt19937_64 rng_;
  TrainStats stats_;
  const DataParallel* group_ = nullptr;
  bool writes_ = true;  ///< rank 0 (or the only process)
  torch::Device device_ = torch::kCPU;
};

/// Open-loop evaluation on held-out episodes.
/// The state read-out (ee and objects, image plane and world, from one frame's latents), fit on the
/// true latents of the first `episodes` training episodes: what Evaluate and the viewer's Imaginer
/// read imagined latents with.
LinearReadout FitStateReadout(const StageTwoData& data, int episodes);

struct EvalOptions {
  int context = 0;       ///< true model steps before a rollout (0: the predictor's context)
  double seconds = 2.0;  ///< how far ahead to imagine (horizon = seconds * control_hz / frame_skip model steps)
  int max_episodes = 100;
  int readout_episodes = 200;  ///< training episodes the state read-out is fit on
};
/// Per task ("all" included) and per horizon (model steps): latent L1 of the model and of copy-last;
/// the state read-out (a ridge fit on true latents of training episodes) applied to the true future
/// latents (floor), the imagined ones and copy-last: end-effector and moving-object error in pixels
/// and cm, and the gap closed; retrieval top-1 (the episode's frame nearest to the imagined latent is
/// within one model step of the true one; also within half a step); the dynamics model's joint and
/// ee errors. Returns the
/// metrics JSON, with a "summary" of the headline numbers.
nlohmann::json Evaluate(WorldModel& model, const StageTwoData& data, const EvalOptions& options);
/// The evaluation as a table.
std::string FormatEvalTable(const nlohmann::json& metrics);
/// The targets, which are met, which cannot be judged and why (a gap closed whose floor/copy is above
/// 0.5: shown "n/a"), and the verdict line, from an evaluation's summary (Evaluate adds them).
nlohmann::json JudgeSummary(const nlohmann::json& summary);

}  // namespace embody::adapt
