#include "adapt/encoder/decoder.h"

#include <cmath>

#include "adapt/core/error.h"
#include "adapt/core/training.h"

namespace embody::adapt {
namespace fs = std::filesystem;

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

void SaveDecoder(LatentDecoder& decoder, int tokens, int latent_dim, int image_size, const std::string& encoder_hash, const fs::path& out) {
  torch::serialize::OutputArchive archive;
  decoder->save(archive);
  archive.write("decoder_config", c10::IValue(nlohmann::json{{"tokens", tokens}, {"latent_dim", latent_dim}, {"image_size", image_size}}.dump()));
  archive.write("encoder_hash", c10::IValue(encoder_hash));
  SaveArchiveAtomically(archive, out);
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
