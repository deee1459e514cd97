#include "adapt/decoder.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "adapt/encoder.h"
#include "adapt/training.h"
#include "adapt/video_data.h"

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

LatentDecoderImpl::LatentDecoderImpl(int tokens, int latent_dim, int size, int width) : image_size(size) {
  grid = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens))));
  if (grid > size) throw AdaptError("the decoder needs a token grid no larger than the image");
  if (tokens == 1 || grid * grid != tokens) {
    // One vector per frame (or per camera: a model of several views): a linear layer lays them out
    // on an 8x8 grid of `width` channels first.
    grid = std::min(8, size);
    spread = register_module("spread", torch::nn::Linear(tokens * latent_dim, width * grid * grid));
    latent_dim = width;
  }
  net = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(latent_dim, width, 1)), torch::nn::GELU());
  for (int g = grid; g < size; g *= 2) {
    net->push_back(torch::nn::Upsample(torch::nn::UpsampleOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest)));
    net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(width, width, 3).padding(1)));
    net->push_back(torch::nn::GELU());
  }
  net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(width, 3, 3).padding(1)));
  register_module("net", net);
}

torch::Tensor LatentDecoderImpl::forward(const torch::Tensor& tokens) {
  const auto b = tokens.size(0), d = tokens.size(2);
  auto x = spread ? spread->forward(tokens.reshape({b, -1})).reshape({b, -1, grid, grid}) : tokens.transpose(1, 2).reshape({b, d, grid, grid});
  x = torch::sigmoid(net->forward(x));
  if (x.size(-1) != image_size)
    x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                  .size(std::vector<int64_t>{image_size, image_size})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false));
  return x;
}

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
  torch::serialize::OutputArchive archive;
  decoder->save(archive);
  archive.write("decoder_config",
                c10::IValue(nlohmann::json{{"tokens", data.tokens()}, {"latent_dim", data.latent_dim()}, {"image_size", s}}.dump()));
  archive.write("encoder_hash", c10::IValue(data.encoder_hash()));
  SaveArchiveAtomically(archive, out);
  return stats;
}

LatentDecoder LoadDecoder(const fs::path& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string(), torch::kCPU);
    c10::IValue value;
    archive.read("decoder_config", value);
    const auto j = nlohmann::json::parse(value.toStringRef());
    LatentDecoder decoder(j.at("tokens").get<int>(), j.at("latent_dim").get<int>(), j.at("image_size").get<int>());
    decoder->load(archive);
    decoder->eval();
    return decoder;
  } catch (const c10::Error& e) {
    throw AdaptError(path.string() + " is not a decoder: " + e.what_without_backtrace());
  }
}

}  // namespace embody::adapt
