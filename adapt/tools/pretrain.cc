// pretrain: stage one. Trains a JEPA video encoder on simcollect datasets (actions ignored), then
// evaluates it with linear probes against a random encoder of the same architecture.
//   pretrain --data data/franka.h5 data/ur5.h5 --out models/encoder.pt
//   pretrain --eval-only --encoder models/encoder.pt --data data/ur5.h5     (any encoder, TorchScript too)
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>

#include "adapt/jepa.h"
#include "collect/config.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

nlohmann::json Probe(FrozenEncoder& encoder, const VideoData& data, const JepaConfig& config, int episodes) {
  const ProbeResult trained = EvaluateProbes(encoder, data, episodes);
  EncoderConfig random_config = config.encoder;
  random_config.image_size = encoder.image_size();
  FrozenEncoder random = FrozenEncoder::Random(random_config, config.seed + 7);
  const ProbeResult baseline = EvaluateProbes(random, data, episodes);
  std::printf("linear probes on pooled latents, held-out episodes (%lld train / %lld test frames):\n",
              static_cast<long long>(trained.train_frames), static_cast<long long>(trained.test_frames));
  std::printf("  %-22s %10s %10s %8s\n", "target", "encoder", "random", "target");
  std::printf("  %-22s %10.3f %10.3f %8s\n", "end-effector position", trained.ee_r2, baseline.ee_r2, ">= 0.9");
  std::printf("  %-22s %10.3f %10.3f %8s\n", "object position", trained.object_r2, baseline.object_r2, ">= 0.8");
  std::printf("  same points in the image plane (u/W, v/H, depth: what one frame shows, whatever the camera):\n");
  std::printf("  %-22s %10.3f %10.3f\n", "end effector (image)", trained.ee_image_r2, baseline.ee_image_r2);
  std::printf("  %-22s %10.3f %10.3f\n", "object (image)", trained.object_image_r2, baseline.object_image_r2);
  return {{"encoder", {{"kind", encoder.kind()}, {"hash", encoder.hash()}}},
          {"ee_position_r2", trained.ee_r2},
          {"object_position_r2", trained.object_r2},
          {"ee_image_r2", trained.ee_image_r2},
          {"object_image_r2", trained.object_image_r2},
          {"random_encoder", {{"ee_position_r2", baseline.ee_r2}, {"object_position_r2", baseline.object_r2},
                              {"ee_image_r2", baseline.ee_image_r2}, {"object_image_r2", baseline.object_image_r2}}},
          {"train_frames", trained.train_frames},
          {"test_frames", trained.test_frames},
          {"targets", {{"ee_position_r2", 0.9}, {"object_position_r2", 0.8}}}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pretrain: stage one, a JEPA video encoder trained on video alone"};
  std::vector<std::string> data_files;
  std::string out = "models/encoder.pt", encoder_path;
  JepaConfig config;
  bool resume = false, overwrite = false, eval_only = false;
  int probe_episodes = 200, encoder_image_size = 0;
  app.add_option("--data", data_files, "simcollect datasets (video only is used)")->required();
  app.add_option("--out", out, "Checkpoint to write (atomically, at every evaluation)")->capture_default_str();
  app.add_option("--steps", config.steps, "Optimization steps")->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--batch", config.batch, "Clips per step")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--lr", config.lr, "Peak learning rate (AdamW)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--mask-ratio", config.mask_ratio, "Fraction of tokens hidden from the context encoder")
      ->capture_default_str()->check(CLI::Range(0.05, 0.95));
  app.add_option("--clip-length", config.clip_length, "Frames per clip")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--clip-stride", config.clip_stride, "Steps between clip frames")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--width", config.encoder.width, "Encoder width (first conv channels)")->capture_default_str()->check(CLI::Range(8, 512));
  app.add_option("--dim", config.encoder.dim, "Latent size per token")->capture_default_str()->check(CLI::Range(8, 2048));
  app.add_option("--threads", config.threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", config.seed, "Random seed")->capture_default_str();
  app.add_option("--probe-episodes", probe_episodes, "Training episodes used to fit the probes")->capture_default_str();
  app.add_flag("--resume", resume, "Continue training the checkpoint at --out");
  app.add_flag("--overwrite", overwrite, "Replace the checkpoint at --out");
  app.add_flag("--eval-only", eval_only, "Only evaluate --encoder with the probes");
  app.add_option("--encoder", encoder_path, "Encoder to evaluate with --eval-only (ours or TorchScript)");
  app.add_option("--encoder-image-size", encoder_image_size, "Input size of a TorchScript encoder without an image_size attribute");
  CLI11_PARSE(app, argc, argv);
  try {
    torch::set_num_threads(config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    std::vector<fs::path> files(data_files.begin(), data_files.end());
    const VideoData data(files);
    if (eval_only) {
      if (encoder_path.empty()) throw AdaptError("--eval-only needs --encoder PATH");
      FrozenEncoder encoder = FrozenEncoder::Load(encoder_path, encoder_image_size > 0 ? encoder_image_size : data.image_size());
      if (encoder.image_size() != data.image_size()) {
        throw AdaptError("encoder " + encoder_path + " takes " + std::to_string(encoder.image_size()) + " px frames; the data has " +
                         std::to_string(data.image_size()) + " px");
      }
      config.encoder.image_size = data.image_size();
      embody::collect::WriteJsonFileAtomically(encoder_path + ".eval.json", Probe(encoder, data, config, probe_episodes));
      return 0;
    }
    if (overwrite && resume) throw AdaptError("--resume and --overwrite exclude each other");
    if (overwrite) fs::remove(out);
    config.encoder.image_size = data.image_size();
    Pretrainer trainer(config, data, out, resume);
    const PretrainStats stats = trainer.Train();
    std::printf("pretrain: %d steps, final train loss %.4f, validation loss %.4f, target std %.3f, %.1f clips/s -> %s\n",
                stats.step, stats.loss, stats.val_loss, stats.target_std, stats.clips_per_s, out.c_str());
    FrozenEncoder encoder = FrozenEncoder::Load(out);
    nlohmann::json eval = Probe(encoder, data, config, probe_episodes);
    eval["train"] = {{"steps", stats.step}, {"loss", stats.loss}, {"val_loss", stats.val_loss}, {"target_std", stats.target_std},
                     {"clips_per_s", stats.clips_per_s}, {"config", config.ToJson()}};
    embody::collect::WriteJsonFileAtomically(out + ".eval.json", eval);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pretrain: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
