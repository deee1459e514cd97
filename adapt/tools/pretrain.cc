// pretrain: stage one. Trains a video encoder on simcollect datasets without labels — by default
// LeWM's recipe (next-embedding prediction with actions, SIGReg; one vector per frame), or the
// masked-latent JEPA (`--recipe jepa`, actions ignored) — then evaluates it with linear probes against
// a random encoder of the same architecture.
//   pretrain --data data/franka.h5 data/ur5.h5 --out models/encoder.pt
//   pretrain --eval-only --encoder models/encoder.pt --data data/ur5.h5     (any encoder, TorchScript too)
//   torchrun-style or `srun -n 4 pretrain ...`: data-parallel ranks (RANK/WORLD_SIZE or SLURM_* variables)
#include <algorithm>
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>

#include "adapt/core/distributed.h"
#include "adapt/core/program_options.h"
#include "adapt/core/training.h"
#include "adapt/encoder/jepa.h"
#include "adapt/encoder/lewm.h"
#include "collect/config.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

nlohmann::json ScoreJson(const ProbeScore& s) { return {{"r2", s.r2}, {"axes_r2", s.axes}}; }

nlohmann::json ResultJson(const ProbeResult& r) {
  return {{"ee_world", ScoreJson(r.ee_world)},      {"object_world", ScoreJson(r.object_world)}, {"ee_position", ScoreJson(r.ee)},
          {"object_position", ScoreJson(r.object)}, {"ee_image", ScoreJson(r.ee_image)},         {"object_image", ScoreJson(r.object_image)}};
}

// Probes `encoder` and a random encoder of the same architecture (and, with ceiling_epochs > 0, the
// supervised ceiling) on the same frames; prints the table and returns it as JSON.
nlohmann::json Probe(FrozenEncoder& encoder, const VideoData& data, const EncoderConfig& architecture, std::uint64_t seed, int episodes,
                     int ceiling_epochs, const std::string& kind) {
  const ProbeSet train = LoadProbeSet(data, "train", episodes), test = LoadProbeSet(data, "valid", episodes);
  const bool attentive = kind == "attentive";
  auto probe = [&](FrozenEncoder& e) { return attentive ? EvaluateAttentiveProbes(e, train, test, seed + 13) : EvaluateProbes(e, train, test); };
  const ProbeResult trained = probe(encoder);
  EncoderConfig random_config = architecture;
  random_config.image_size = encoder.image_size();
  FrozenEncoder random = FrozenEncoder::Random(random_config, seed + 7);
  const ProbeResult baseline = probe(random);
  ProbeResult ceiling;
  if (ceiling_epochs > 0) {
    std::fprintf(stderr, "pretrain: supervised ceiling: training the encoder architecture on the probe targets (%d epochs)...\n", ceiling_epochs);
    ceiling = SupervisedCeiling(random_config, train, test, ceiling_epochs, seed + 11);
  }
  std::printf("%s, R^2 on held-out episodes (%lld train / %lld test frames):\n",
              attentive ? "attentive probes on every token (equal capacity for vectors and grids)" : "linear probes on pooled latents",
              static_cast<long long>(trained.train_frames), static_cast<long long>(trained.test_frames));
  std::printf("  %-22s %-24s %8s %9s %7s\n", "point", "encoder (per axis)", "random", "ceiling", "target");
  struct Row {
    const char* name;
    ProbeScore ProbeResult::*score;
    const char* target;
  };
  const Row rows[] = {{"end effector (world)", &ProbeResult::ee_world, ">= 0.9"}, {"object (world)", &ProbeResult::object_world, ">= 0.8"},
                      {"end effector (camera)", &ProbeResult::ee, ">= 0.9"},      {"object (camera)", &ProbeResult::object, ">= 0.8"},
                      {"end effector (image)", &ProbeResult::ee_image, ""},       {"object (image)", &ProbeResult::object_image, ""}};
  for (const Row& row : rows) {
    const ProbeScore& s = trained.*row.score;
    char axes[64];
    std::snprintf(axes, sizeof(axes), "%.3f (%.2f %.2f %.2f)", s.r2, s.axes[0], s.axes[1], s.axes[2]);
    char top[16] = "-";
    if (ceiling_epochs > 0) std::snprintf(top, sizeof(top), "%.3f", (ceiling.*row.score).r2);
    std::printf("  %-22s %-24s %8.3f %9s %7s\n", row.name, axes, (baseline.*row.score).r2, top, row.target);
  }
  std::printf(
      "  world and camera axes x, y, z; image axes u/W, v/H, depth. ceiling: the same architecture trained supervised\n"
      "  on these targets (pretrain --ceiling-epochs N), the most a probe of this architecture can show.\n"
      "  the object (the first of the scene's) on the %lld test frames where it is in view (%lld out of view left out).\n",
      static_cast<long long>(trained.test_frames - trained.object_out_of_view), static_cast<long long>(trained.object_out_of_view));
  nlohmann::json j = ResultJson(trained);
  j["encoder"] = {{"kind", encoder.kind()}, {"hash", encoder.hash()}};
  j["random_encoder"] = ResultJson(baseline);
  if (ceiling_epochs > 0) {
    j["supervised_ceiling"] = ResultJson(ceiling);
    j["supervised_ceiling"]["epochs"] = ceiling_epochs;
  }
  j["train_frames"] = trained.train_frames;
  j["test_frames"] = trained.test_frames;
  j["object_out_of_view_frames"] = trained.object_out_of_view;
  j["targets"] = {{"ee_position_r2", 0.9}, {"object_position_r2", 0.8}};
  j["probe"] = kind;  // the ceiling is the supervised network's own linear head on pooled features either way
  return j;
}

// pretrain's options, bound to the command line (and --config) by AddOptions.
struct PretrainOptions {
  std::vector<std::string> data_files, clip_cameras;
  std::string out = "models/encoder.pt", encoder_path, recipe = "lewm", precision = "float32", latent = "vector", device = "auto";
  JepaConfig jepa;
  LewmConfig lewm;
  // Options both recipes share; unset ones keep each recipe's own default.
  int steps = 0, batch = 0, width = 0, dim = 0, threads = 0;
  double lr = 0;
  std::uint64_t seed = 0;
  bool resume = false, overwrite = false, eval_only = false, prefetch = false;
  int probe_episodes = 1000, encoder_image_size = 0, ceiling_epochs = 0;
  std::string probe = "ridge";
  CLI::Option* prefetch_flag = nullptr;
};

// The options both recipes read: data, output, the optimizer's shared sizes, the latent's shape.
void AddSharedOptions(CLI::App& app, PretrainOptions& o) {
  app.add_option("--data", o.data_files, "simcollect datasets")->required();
  app.add_option("--out", o.out, "Checkpoint to write (atomically, at every evaluation)")->capture_default_str();
  app.add_option("--recipe", o.recipe,
                 "lewm: encoder + action-conditioned next-embedding predictor with SIGReg, one vector per frame; "
                 "jepa: masked-latent prediction against an EMA target, a token grid per frame (actions ignored)")
      ->capture_default_str()
      ->check(CLI::IsMember({"lewm", "jepa"}));
  app.add_option("--steps", o.steps, "Optimization steps (lewm 2000, jepa 1500)")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", o.batch, "Clips per step (lewm 32, jepa 16)")->check(CLI::Range(1, 4096));
  app.add_option("--lr", o.lr, "Peak learning rate, AdamW (lewm and jepa 1e-3)")->check(CLI::PositiveNumber);
  app.add_option("--width", o.width, "Encoder width, first conv channels (32)")->check(CLI::Range(8, 512));
  app.add_option("--dim", o.dim, "Latent size per token (lewm 192, or 32 with --latent grid; jepa 128)")->check(CLI::Range(8, 2048));
  app.add_option("--latent", o.latent,
                 "lewm: a frame's latent: vector (one --dim vector, 192) or grid (a token per 8x8 pixels, --dim 32 each: the "
                 "next-embedding loss on every token, SIGReg over tokens; --recon-weight: each token redraws its own patch; the vector's "
                 "contrastive terms off)")
      ->capture_default_str()
      ->check(CLI::IsMember({"vector", "grid"}));
  app.add_option("--keypoints", o.lewm.encoder.keypoints,
                 "lewm: the last 2K numbers of the vector are the image coordinates of K spatial-softmax keypoints (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 512));
  app.add_option("--threads", o.threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app.add_option("--camera", o.clip_cameras,
                 "Cameras the training clips are read from, one drawn per clip (e.g. --camera camera0 camera1 on simcollect --cameras 2 "
                 "data, for a world model that reads both views; robot0_eye_in_hand on simcollect --eye-in-hand data; default: every agent view "
                 "all the datasets have). "
                 "The probes read the first of them")
      ->expected(1, -1);
}

// The lewm recipe's loss terms.
void AddLewmOptions(CLI::App& app, LewmConfig& lewm) {
  app.add_option("--frame-skip", lewm.frame_skip, "lewm: control steps per model step")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--rollout", lewm.rollout, "lewm: open-loop steps in the loss")->capture_default_str()->check(CLI::Range(1, 16));
  app.add_option("--sigreg-weight", lewm.sigreg_weight, "lewm: weight of SIGReg")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option(
         "--contrast-weight", lewm.contrast_weight,
         "lewm: weight of the within-clip contrastive term (the predicted next embedding must pick the true next frame among the clip's frames)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--scene-weight", lewm.scene_weight,
                 "lewm: weight of the between-scene contrastive term (a clip's first frame must pick an altered view of its own last "
                 "frame among the batch's: colours and small shifts do not tell scenes apart, the objects do)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--scene-shift", lewm.scene_shift, "lewm: the between-scene term's altered views are shifted by up to this many pixels")
      ->capture_default_str()
      ->check(CLI::Range(0, 32));
  app.add_option("--scene-camera", lewm.scene_camera,
                 "lewm: the between-scene term's positive from this camera of the same episode (e.g. camera1 of a simcollect --cameras 2 "
                 "dataset): the camera's pose no longer tells scenes apart (empty: the anchor's camera)");
  app.add_flag("--scene-any-time", lewm.scene_any_time,
               "lewm: the between-scene term's positive is a view (--scene-camera's, else the anchor's camera) of any frame of the "
               "episode, not of the clip's last: what is left to match by is what stands still");
  app.add_flag("--scene-groups", lewm.scene_groups,
               "lewm: the batch in runs of clips from the episodes of one scene group (data from simcollect --layouts-per-scene N: runs of N "
               "clips): scenes alike but for the objects' layout, so the between-scene term is won only by carrying the objects; with --latent grid "
               "the term is per token (a token must pick its own clip's among the group mates' tokens at its place)");
  app.add_option("--recon-weight", lewm.recon_weight,
                 "lewm: weight of a pixel term: a small decoder redraws each clip's first frame from its embedding (MSE), so the "
                 "encoder keeps what the frame shows, small objects that stand still included (0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--recon-target", lewm.recon_target,
                 "lewm: what the pixel term redraws: rgb (the frame) or highpass (the frame minus its 5x5 local mean: edges and "
                 "small objects)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rgb", "highpass"}));
  app.add_option("--scene-queue", lewm.scene_queue,
                 "lewm: earlier positives kept as the between-scene term's further negatives (0 = the batch's only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
}

// The jepa recipe's masking and clips, the probes, the device, and what to do with --out.
void AddRunOptions(CLI::App& app, PretrainOptions& o) {
  app.add_option("--mask-ratio", o.jepa.mask_ratio, "jepa: fraction of tokens hidden from the context encoder")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 0.95));
  app.add_option("--mask-per-clip", o.jepa.mask_per_clip, "jepa: a tube mask per clip (false: one mask for the whole batch)")->capture_default_str();
  app.add_option("--clip-length", o.jepa.clip_length, "jepa: frames per clip")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--clip-stride", o.jepa.clip_stride, "jepa: steps between clip frames")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--probe-episodes", o.probe_episodes, "Training (and at most as many held-out) episodes used for the probes")->capture_default_str();
  app.add_option("--probe", o.probe,
                 "ridge (linear, on the tokens pooled to 4x4: fast) or attentive (a small attentive probe on every token, of equal capacity "
                 "for vectors and grids)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ridge", "attentive"}));
  app.add_option(
         "--ceiling-epochs", o.ceiling_epochs,
         "Also train the encoder architecture supervised on the probe targets for N epochs: the ceiling the probes are measured against (0 = skip)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--device", o.device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda")->capture_default_str();
  app.add_option("--precision", o.precision,
                 "float32; bf16 (float32 weights, forward passes autocast to bfloat16: for GPUs with bf16 tensor cores); or float64 for numerical "
                 "checks (slower)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16", "float64"}));
  o.prefetch_flag = app.add_flag("--prefetch,!--no-prefetch", o.prefetch,
                                 "lewm: read the next batch on a thread while a step computes (default: on a GPU only; on CPU cores the "
                                 "reader's thread takes from the step's)");
  app.add_flag("--resume", o.resume, "Continue training the checkpoint at --out");
  app.add_flag("--overwrite", o.overwrite, "Replace the checkpoint at --out")->configurable(false);
  app.add_flag("--eval-only", o.eval_only, "Only evaluate --encoder with the probes");
  app.add_option("--encoder", o.encoder_path, "Encoder to evaluate with --eval-only (ours or TorchScript)");
  app.add_option("--encoder-image-size", o.encoder_image_size, "Input size of a TorchScript encoder without an image_size attribute");
}

// The shared options into both recipes' configs, the grid's own defaults (an option given on the
// command line still wins, or is refused by the trainer).
void ResolveRecipes(const CLI::App& app, PretrainOptions& o) {
  auto set = [](auto value, auto* field) {
    if (value > 0) *field = value;
  };
  JepaConfig& jepa = o.jepa;
  LewmConfig& lewm = o.lewm;
  set(o.steps, &jepa.steps), set(o.steps, &lewm.steps), set(o.batch, &jepa.batch), set(o.batch, &lewm.batch), set(o.lr, &jepa.lr),
      set(o.lr, &lewm.lr);
  if (o.latent == "grid") {
    if (o.recipe != "lewm") throw AdaptError("--latent is the lewm recipe's (jepa's latent is always a grid)");
    lewm.encoder.head = "grid";
    lewm.encoder.dim = 32;
    lewm.predictor_width = 128;
    if (app.count("--contrast-weight") == 0) lewm.contrast_weight = 0;
    if (app.count("--scene-weight") == 0) lewm.scene_weight = 0;
  }
  set(o.width, &jepa.encoder.width), set(o.width, &lewm.encoder.width), set(o.dim, &jepa.encoder.dim), set(o.dim, &lewm.encoder.dim);
  jepa.threads = lewm.threads = o.threads;
  jepa.seed = lewm.seed = o.seed;
  lewm.bf16 = SetPrecision(o.precision);
}

// Without --camera, the agent views every dataset has (a world model reads them all); returns the
// line that says so (printed once this run holds its output), or "".
std::string DefaultClipCameras(const VideoData& data, size_t num_files, bool root, std::vector<std::string>* clip_cameras) {
  if (!clip_cameras->empty()) return "";
  *clip_cameras = data.dataset(0).AgentCameras();
  for (size_t d = 1; d < num_files; ++d) {
    const auto theirs = data.dataset(d).AgentCameras();
    clip_cameras->erase(std::remove_if(clip_cameras->begin(), clip_cameras->end(),
                                       [&](const std::string& c) { return std::find(theirs.begin(), theirs.end(), c) == theirs.end(); }),
                        clip_cameras->end());
  }
  if (clip_cameras->size() < 2 || !root) return "";
  std::string note;
  for (const auto& c : *clip_cameras) note += (note.empty() ? "" : " ") + c;
  return "pretrain: clips from " + note + ", the views every dataset has (--camera picks others)\n";
}

// --eval-only: the probes of any encoder, into <encoder>.eval.json.
void EvaluateOnly(const PretrainOptions& o, const VideoData& data, const EncoderConfig& architecture, const nlohmann::json& options) {
  if (o.encoder_path.empty()) throw AdaptError("--eval-only needs --encoder PATH");
  FrozenEncoder encoder = FrozenEncoder::Load(o.encoder_path, o.encoder_image_size > 0 ? o.encoder_image_size : data.image_size());
  if (encoder.image_size() != data.image_size()) {
    throw AdaptError("encoder " + o.encoder_path + " takes " + std::to_string(encoder.image_size()) + " px frames; the data has " +
                     std::to_string(data.image_size()) + " px");
  }
  const auto lock = LockOutputOnRoot(o.encoder_path + ".eval.json", "pretrain --eval-only", nullptr);
  nlohmann::json eval = Probe(encoder, data, architecture, o.seed, o.probe_episodes, o.ceiling_epochs, o.probe);
  eval["options"] = options;
  embody::collect::WriteJsonFileAtomically(o.encoder_path + ".eval.json", eval);
}

// Trains the chosen recipe into --out; returns eval.json's "train" (null on a rank other than the root).
nlohmann::json Train(PretrainOptions& o, VideoData& data, DataParallel* group) {
  if (o.recipe == "lewm") {
    LewmConfig& lewm = o.lewm;
    lewm.encoder.image_size = data.image_size();
    LewmTrainer trainer(lewm, data, o.out, o.resume, group);
    const LewmStats stats = trainer.Train();
    if (group && !group->is_root()) return nullptr;  // rank 0 reports and evaluates
    std::printf(
        "pretrain: %d steps, next-embedding MSE %.4f (copy-last %.4f), held-out ratio to copy-last %.3f, SIGReg %.3f, "
        "%.1f clips/s -> %s\n",
        stats.step, stats.prediction, stats.copy_last, stats.val_ratio, stats.sigreg, stats.clips_per_s, o.out.c_str());
    return {{"recipe", "lewm"},
            {"steps", stats.step},
            {"loss", stats.loss},
            {"prediction_mse", stats.prediction},
            {"copy_last_mse", stats.copy_last},
            {"val_ratio_to_copy_last", stats.val_ratio},
            {"sigreg", stats.sigreg},
            {"clips_per_s", stats.clips_per_s},
            {"config", lewm.ToJson()}};
  }
  JepaConfig& jepa = o.jepa;
  jepa.encoder.image_size = data.image_size();
  Pretrainer trainer(jepa, data, o.out, o.resume);
  const PretrainStats stats = trainer.Train();
  std::printf("pretrain: %d steps, final train loss %.4f, validation loss %.4f, target std %.3f, %.1f clips/s -> %s\n", stats.step, stats.loss,
              stats.val_loss, stats.target_std, stats.clips_per_s, o.out.c_str());
  return {{"recipe", "jepa"},
          {"steps", stats.step},
          {"loss", stats.loss},
          {"val_loss", stats.val_loss},
          {"target_std", stats.target_std},
          {"clips_per_s", stats.clips_per_s},
          {"config", jepa.ToJson()}};
}

// Data-parallel ranks when launched as several processes (torchrun's or Slurm's variables).
std::unique_ptr<DataParallel> JoinRanks(const LaunchInfo& launch, const PretrainOptions& o) {
  if (launch.world_size <= 1) return nullptr;
  if (o.eval_only) throw AdaptError("--eval-only runs in one process (launched as " + std::to_string(launch.world_size) + " ranks)");
  if (o.recipe != "lewm") throw AdaptError("--recipe " + o.recipe + " trains in one process; data-parallel ranks train the lewm recipe");
  auto group = DataParallel::Join(launch);
  if (group->is_root()) {
    std::fprintf(stderr, "pretrain: %d data-parallel ranks (%s), global batch %d, %d per rank\n", launch.world_size, launch.launcher.c_str(),
                 o.lewm.batch, o.lewm.batch / launch.world_size);
  }
  return group;
}

void Run(PretrainOptions& o, const CLI::App& app, const nlohmann::json& options) {
  ResolveRecipes(app, o);
  const LaunchInfo launch = ReadLaunchInfo();
  std::unique_ptr<DataParallel> group = JoinRanks(launch, o);
  torch::set_num_threads(ThreadsPerRank(o.threads, launch));
  const torch::Device dev = ResolveDevice(o.device, launch.local_rank);
  if (o.lewm.bf16 && o.recipe != "lewm") throw AdaptError("--recipe " + o.recipe + " trains in float32; --precision bf16 is for the lewm recipe");
  o.lewm.device = o.jepa.device = dev.str();
  o.lewm.prefetch = o.prefetch_flag->count() > 0 ? o.prefetch : dev.is_cuda();
  const bool root = !group || group->is_root();
  if (dev.is_cuda() && root) std::fprintf(stderr, "pretrain: training on %s\n", o.lewm.device.c_str());
  std::vector<fs::path> files(o.data_files.begin(), o.data_files.end());
  // The probes read the first clip camera (a camera on the hand too: its pose per frame).
  VideoData data(files, o.clip_cameras.empty() ? "camera0" : o.clip_cameras.front());
  const std::string cameras_note = DefaultClipCameras(data, files.size(), root, &o.clip_cameras);
  data.SetClipCameras(o.clip_cameras);
  const EncoderConfig architecture = o.recipe == "lewm" ? o.lewm.encoder : o.jepa.encoder;
  if (o.eval_only) return EvaluateOnly(o, data, architecture, options);
  if (o.overwrite && o.resume) throw AdaptError("--resume and --overwrite exclude each other");
  // One writer per checkpoint: a second pretrain on it (--overwrite, --resume too) is refused.
  const auto lock = LockOutputOnRoot(o.out, "pretrain", group.get());
  std::fputs(cameras_note.c_str(), stderr);
  if (o.overwrite && root) fs::remove(o.out);
  if (group) group->Barrier();
  const nlohmann::json train = Train(o, data, group.get());
  if (!root) return;
  FrozenEncoder encoder = FrozenEncoder::Load(o.out);
  encoder.To(dev);
  nlohmann::json eval = Probe(encoder, data, architecture, o.seed, o.probe_episodes, o.ceiling_epochs, o.probe);
  eval["train"] = train;
  eval["options"] = options;
  embody::collect::WriteJsonFileAtomically(o.out + ".eval.json", eval);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pretrain: stage one, a self-supervised video encoder (LeWM's recipe by default, or a masked-latent JEPA)"};
  PretrainOptions o;
  AddSharedOptions(app, o);
  AddLewmOptions(app, o.lewm);
  AddRunOptions(app, o);
  AddConfigOption(app);
  CLI11_PARSE(app, argc, argv);
  const nlohmann::json options = ProgramOptions(app);  // stored in <checkpoint>.eval.json: pretrain --config reads it back
  try {
    Run(o, app, options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pretrain: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
