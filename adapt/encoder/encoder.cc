#include "adapt/encoder/encoder.h"

#include <fstream>

#include "adapt/core/distributed.h"
#include "adapt/core/error.h"

namespace embody::adapt {

void to_json(nlohmann::json& j, const EncoderConfig& c) {
  j = {{"image_size", c.image_size}, {"width", c.width}, {"dim", c.dim}, {"head", c.head}, {"hidden", c.hidden}, {"keypoints", c.keypoints}};
}

void from_json(const nlohmann::json& j, EncoderConfig& c) {
  j.at("image_size").get_to(c.image_size);
  j.at("width").get_to(c.width);
  j.at("dim").get_to(c.dim);
  c.head = j.value("head", std::string("grid"));  // checkpoints from before the vector head
  c.hidden = j.value("hidden", EncoderConfig{}.hidden);
  c.keypoints = j.value("keypoints", 0);  // from before keypoints
}

nlohmann::json EncoderConfig::ToJson() const { return *this; }
EncoderConfig EncoderConfig::FromJson(const nlohmann::json& j) { return j.get<EncoderConfig>(); }

ConvEncoderImpl::ConvEncoderImpl(const EncoderConfig& c) : config(c) {
  if (c.image_size % 8 != 0 || c.image_size < 16) {
    throw AdaptError("encoder image size must be a multiple of 8 and at least 16, got " + std::to_string(c.image_size));
  }
  namespace nn = torch::nn;
  nn::Sequential layers;
  const int channels[5] = {3, c.width, 2 * c.width, 4 * c.width, 4 * c.width};
  const int strides[4] = {2, 2, 2, 1};
  for (int i = 0; i < 4; ++i) {
    layers->push_back(nn::Conv2d(nn::Conv2dOptions(channels[i], channels[i + 1], 3).stride(strides[i]).padding(1)));
    layers->push_back(nn::GroupNorm(nn::GroupNormOptions(8, channels[i + 1])));
    layers->push_back(nn::GELU());
  }
  if (c.head != "grid" && c.head != "vector") throw AdaptError("encoder head must be grid or vector, not " + c.head);
  const bool vector = c.head == "vector";
  // The vector head flattens a narrow feature map (width channels on the grid) into its projector.
  layers->push_back(nn::Conv2d(nn::Conv2dOptions(4 * c.width, vector ? c.width : c.dim, 1)));
  net = register_module("net", layers);
  if (c.keypoints < 0 || (c.keypoints > 0 && (!vector || 2 * c.keypoints >= c.dim))) {
    throw AdaptError("encoder keypoints need the vector head and 2 x keypoints < dim, got " + std::to_string(c.keypoints) + " keypoints, dim " +
                     std::to_string(c.dim));
  }
  if (vector) {
    projector = register_module("projector", nn::Sequential(nn::Linear(c.width * c.grid() * c.grid(), c.hidden), nn::BatchNorm1d(c.hidden),
                                                            nn::GELU(), nn::Linear(c.hidden, c.dim - 2 * c.keypoints)));
  }
  if (c.keypoints > 0) keypoint_maps = register_module("keypoint_maps", nn::Conv2d(nn::Conv2dOptions(2 * c.width, c.keypoints, 1)));
}

namespace {

/// Modules of `net` up to the stride-4 features: two conv stages of conv, GroupNorm and GELU.
constexpr int kStride4Modules = 6;

/// (N, K, H, W) maps -> (N, 2K): each map's softmax-weighted mean x (K numbers), then y, in [-1, 1].
torch::Tensor SpatialSoftmax(const torch::Tensor& maps) {
  const auto n = maps.size(0), k = maps.size(1), h = maps.size(2), w = maps.size(3);
  const auto p = torch::softmax(maps.reshape({n, k, h * w}), -1).reshape({n, k, h, w});
  const auto xs = torch::linspace(-1, 1, w, maps.options()), ys = torch::linspace(-1, 1, h, maps.options());
  return torch::cat({(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)}, 1);
}

}  // namespace

torch::Tensor ConvEncoderImpl::forward(const torch::Tensor& frames) {
  const auto b = frames.size(0), t = frames.size(1);
  auto x = frames.reshape({b * t, 3, frames.size(3), frames.size(4)}) - 0.5;
  torch::Tensor points;  // (B*T, 2K) with keypoints
  if (keypoint_maps) {
    auto layer = net->begin();
    for (int i = 0; i < kStride4Modules; ++i, ++layer) x = layer->forward(x);
    points = SpatialSoftmax(keypoint_maps->forward(x));
    for (; layer != net->end(); ++layer) x = layer->forward(x);
  } else {
    x = net->forward(x);
  }
  if (projector) {
    torch::Tensor z;
    if (group && is_training()) {  // the same layers, the norm over every rank's share
      const auto h = projector[0]->as<torch::nn::Linear>()->forward(x.flatten(1));
      const auto n = SyncBatchNorm(h, *projector[1]->as<torch::nn::BatchNorm1d>(), *group);
      z = projector[3]->as<torch::nn::Linear>()->forward(torch::gelu(n));
    } else {
      z = projector->forward(x.flatten(1));
    }
    if (points.defined()) z = torch::cat({z, points}, 1);
    return z.reshape({b, t, 1, config.dim});
  }
  // (B*T, D, g, g) -> (B, T, g*g, D)
  return x.flatten(2).transpose(1, 2).reshape({b, t, -1, config.dim});
}

torch::Tensor FramesToInput(const torch::Tensor& frames_uint8) { return frames_uint8.permute({0, 1, 4, 2, 3}).to(DefaultFloat()).div(255.0); }

std::string FileHash(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AdaptError("cannot read " + path.string());
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bit
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buffer[i]);
      h *= 1099511628211ull;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void FrozenEncoder::RequireHash(const std::string& model_hash) const {
  if (hash_ == model_hash) return;
  throw AdaptError("the world model was trained on the latents of encoder " + model_hash + "; the encoder given is " + hash_ +
                   " (pass the encoder the model was adapted on)");
}

FrozenEncoder FrozenEncoder::Load(const std::filesystem::path& path, int default_image_size) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw AdaptError("no encoder " + path.string() + " — run: pretrain --data data/franka.h5 --out " + path.string());
  }
  FrozenEncoder e;
  e.source_ = path.string();
  e.hash_ = FileHash(path);
  // Ours: an archive written by `pretrain`, recognizable by its embody_format entry.
  {
    torch::serialize::InputArchive archive;
    c10::IValue format;
    bool ours = false;
    try {
      archive.load_from(path.string(), torch::kCPU);  // written on any device, read here on the CPU
      ours = archive.try_read("embody_format", format);
    } catch (const std::exception&) {
      ours = false;
    }
    if (ours) {
      try {
        c10::IValue config;
        archive.read("config", config);
        const auto json = nlohmann::json::parse(config.toStringRef());
        e.ours_ = ConvEncoder(EncoderConfig::FromJson(json.at("encoder")));
        torch::serialize::InputArchive target;
        archive.read("target", target);
        e.ours_->load(target);
      } catch (const std::exception&) {
        throw AdaptError(path.string() + " is an Embody archive (" + (format.isString() ? format.toStringRef() : std::string("?")) +
                         ") but not an encoder checkpoint, or a damaged one: pass the encoder `pretrain --out` wrote");
      }
      e.ours_->eval();
      e.image_size_ = e.ours_->config.image_size;
      e.kind_ = "embody";
      return e;
    }
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(path.string(), torch::kCPU);
  } catch (const std::exception&) {
    throw AdaptError(path.string() + " is neither an Embody encoder checkpoint nor a TorchScript module");
  }
  if (!module.find_method("forward")) {
    throw AdaptError(path.string() +
                     " is a TorchScript file without a forward method; an encoder maps frames "
                     "(B,T,3,H,W) to tokens (B,T,N,D)");
  }
  e.script_ = std::make_shared<torch::jit::Module>(std::move(module));
  e.script_->eval();
  e.image_size_ = default_image_size;
  if (e.script_->hasattr("image_size")) e.image_size_ = static_cast<int>(e.script_->attr("image_size").toInt());
  if (e.image_size_ <= 0) {
    throw AdaptError(path.string() + ": the TorchScript encoder has no image_size attribute; state it with --encoder-image-size");
  }
  e.kind_ = "torchscript";
  return e;
}

FrozenEncoder FrozenEncoder::Random(const EncoderConfig& config, std::uint64_t seed) {
  torch::manual_seed(seed);
  FrozenEncoder e;
  e.ours_ = ConvEncoder(config);
  e.ours_->eval();
  e.image_size_ = config.image_size;
  e.kind_ = "embody";
  e.hash_ = "random-" + std::to_string(seed);
  e.source_ = "random encoder";
  return e;
}

torch::Tensor FrozenEncoder::Encode(const torch::Tensor& frames) {
  if (frames.dim() != 5 || frames.size(2) != 3 || frames.size(3) != image_size_ || frames.size(4) != image_size_) {
    throw AdaptError("encoder " + source_ + " expects frames (B,T,3," + std::to_string(image_size_) + "," + std::to_string(image_size_) + "), got " +
                     c10::str(frames.sizes()));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor out;
  const torch::Tensor input = frames.to(device_);
  if (ours_) {
    out = ours_->forward(input);
  } else {
    c10::IValue result;
    try {
      result = script_->forward({input});
    } catch (const std::exception& err) {
      throw AdaptError("TorchScript encoder " + source_ + " failed on frames " + c10::str(frames.sizes()) + ": " +
                       std::string(err.what()).substr(0, 300));
    }
    if (!result.isTensor()) throw AdaptError("TorchScript encoder " + source_ + " must return one tensor");
    out = result.toTensor();
  }
  if (out.dim() != 4 || out.size(0) != frames.size(0) || out.size(1) != frames.size(1)) {
    throw AdaptError("encoder " + source_ + " returned " + c10::str(out.sizes()) + "; the interface is tokens (B,T,N,D) for frames (B,T,3,H,W)");
  }
  return out.to(torch::kCPU, torch::kFloat32);
}

void FrozenEncoder::To(const torch::Device& device) {
  if (ours_) ours_->to(device);
  if (script_) script_->to(device);
  device_ = device;
}

}  // namespace embody::adapt
