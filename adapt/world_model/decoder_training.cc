#include "adapt/world_model/decoder_training.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "adapt/core/training.h"
#include "adapt/encoder/encoder.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;

// A batch of (latents (B, N, D), frames (B, 3, S, S)) from a split: runs of 4 frames of random episodes.
std::pair<torch::Tensor, torch::Tensor> Pairs(const StageTwoData& data, const std::string& split, int batch, std::mt19937_64* rng) {
  std::vector<torch::Tensor> latents, frames;
  const auto& episodes = data.episodes(split);
  for (int b = 0; b < batch; b += 4) {
    const auto& ep = episodes[(*rng)() % episodes.size()];
    const int64_t n = std::min<int64_t>(4, ep.frames);
    const int64_t first = static_cast<int64_t>((*rng)() % static_cast<uint64_t>(ep.frames - n + 1));
    latents.push_back(data.Read(ep, first, n).latents);
    int s = 0;
    auto bytes = data.Frames(ep, first, n, &s);
    frames.push_back(FramesToInput(torch::from_blob(bytes.data(), {n, 1, s, s, 3}, torch::kUInt8).clone()).squeeze(1));
  }
  return {torch::cat(latents), torch::cat(frames)};
}

}  // namespace

DecoderStats TrainDecoder(const StageTwoData& data, int steps, std::uint64_t seed, const fs::path& out, bool verbose) {
  torch::manual_seed(seed);
  std::mt19937_64 rng(seed);
  const int s = data.image_size();
  LatentDecoder decoder(data.tokens(), data.latent_dim(), s);
  torch::optim::Adam opt(decoder->parameters(), torch::optim::AdamOptions(2e-3));
  DecoderStats stats;
  double window = 0;
  for (int step = 0; step < steps; ++step) {
    const auto [latents, frames] = Pairs(data, "train", 16, &rng);
    auto loss = (decoder->forward(latents) - frames).abs().mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    const double v = loss.item<double>();
    if (!std::isfinite(v)) throw AdaptError("decoder loss is " + std::to_string(v));
    if (step < 10) stats.first_loss += v / std::min(10, steps);
    if (step >= steps - 10) stats.last_loss += v / std::min(10, steps);
    window += v;
    if (verbose && (step + 1) % 50 == 0) {
      std::fprintf(stderr, "adapt: decoder step %d/%d  pixel L1 %.4f\n", step + 1, steps, window / 50);
      window = 0;
    }
  }
  {
    torch::NoGradGuard no_grad;
    std::mt19937_64 vrng(seed + 1);
    const auto& split = data.episodes("valid").empty() ? "train" : "valid";
    const auto [latents, frames] = Pairs(data, split, 32, &vrng);
    stats.val_loss = (decoder->forward(latents) - frames).abs().mean().item<double>();
  }
  SaveDecoder(decoder, data.tokens(), data.latent_dim(), s, data.encoder_hash(), out);
  return stats;
}

}  // namespace embody::adapt
