#include "adapt/world_model/world_model.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "adapt/core/error.h"
#include "adapt/core/training.h"
#include "adapt/encoder/encoder.h"
#include "collect/dataset.h"

namespace embody::adapt {

namespace fs = std::filesystem;
namespace {

constexpr int kConditionTokens = 4;  // action, joints, end effector, camera
constexpr int kMaxFrames = 64;       // frame position table size (context must fit)

// Copies parameters and buffers by name; shapes must match.
void CopyModule(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters(true);
  for (auto& p : to.named_parameters(true)) {
    const auto* s = src.find(p.key());
    if (s == nullptr || !s->sizes().equals(p.value().sizes())) {
      throw AdaptError("cannot initialize parameter " + p.key() + ": the models differ in shape");
    }
    p.value().copy_(*s);
  }
}

void WriteModule(torch::serialize::OutputArchive& archive, const std::string& key, const torch::nn::Module& m) {
  torch::serialize::OutputArchive sub;
  m.save(sub);
  archive.write(key, sub);
}

void ReadModule(torch::serialize::InputArchive& archive, const std::string& key, torch::nn::Module& m) {
  torch::serialize::InputArchive sub;
  archive.read(key, sub);
  m.load(sub);
}

}  // namespace

nlohmann::json EmbodimentSpec::ToJson() const { return *this; }
EmbodimentSpec EmbodimentSpec::FromJson(const nlohmann::json& j) { return j.get<EmbodimentSpec>(); }
nlohmann::json PredictorConfig::ToJson() const { return *this; }
PredictorConfig PredictorConfig::FromJson(const nlohmann::json& j) {
  nlohmann::json older = j;
  if (!j.contains("cameras")) older["cameras"] = {"camera0"};
  if (!j.contains("frame_skip")) {
    std::fprintf(stderr, "note: this stage-two model predates model steps: loaded with frame skip 1 (one control step per prediction)\n");
    older["frame_skip"] = 1;
  }
  return older.get<PredictorConfig>();
}

void PredictorConfig::RequireNumberedCameras(const std::string& who) const {
  const size_t agents = reads_hand() ? cameras.size() - 1 : cameras.size();
  bool numbered = agents > 0;
  for (size_t c = 0; c < agents; ++c) numbered = numbered && cameras[c] == "camera" + std::to_string(c);
  if (!numbered) {
    throw AdaptError(who + " cameras camera0, camera1, ... in order, then the hand's robot0_eye_in_hand if the model reads it; the model reads " +
                     nlohmann::json(cameras).dump());
  }
}

int PredictorConfig::agent_views() const {
  int n = 0;
  for (const auto& c : cameras) n += IsHandCamera(c) ? 0 : 1;
  return n;
}

bool IsHandCamera(const std::string& camera) { return camera == collect::keys::kEyeInHand; }

std::vector<double> PoseOnHand(const std::vector<double>& c, const std::array<double, 3>& p, const std::array<double, 4>& q) {
  if (c.size() != 16) throw AdaptError("a camera pose is 16 numbers (4x4), not " + std::to_string(c.size()));
  const double n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  if (!(n > 0)) throw AdaptError("the end effector's quaternion is zero");
  const double w = q[0] / n, x = q[1] / n, y = q[2] / n, z = q[3] / n;
  const double r[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                          {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                          {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}};  // hand-to-world
  std::vector<double> out(16, 0.0);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 3; ++k) out[i * 4 + j] += r[k][i] * c[k * 4 + j];  // R^T R_camera
    }
    for (int k = 0; k < 3; ++k) out[i * 4 + 3] += r[k][i] * (c[k * 4 + 3] - p[k]);  // R^T (p_camera - p_hand)
  }
  out[15] = 1;
  return out;
}

DynamicsModelImpl::DynamicsModelImpl(int proprio_dim, int action_dim, int hidden) {
  net = register_module("net", torch::nn::Sequential(torch::nn::Linear(proprio_dim + action_dim, hidden), torch::nn::GELU(),
                                                     torch::nn::Linear(hidden, hidden), torch::nn::GELU(), torch::nn::Linear(hidden, proprio_dim)));
}

torch::Tensor DynamicsModelImpl::forward(const torch::Tensor& proprio, const torch::Tensor& action) {
  return net->forward(torch::cat({proprio, action}, -1));
}

AdapterImpl::AdapterImpl(const EmbodimentSpec& spec, int dim, int frame_skip) {
  action = register_module("action", torch::nn::Linear(spec.action_dim * frame_skip, dim));
  joints = register_module("joints", torch::nn::Linear(2 * spec.joints, dim));
  token = register_parameter("token", torch::randn({dim}) * 0.02);
}

TrunkImpl::TrunkImpl(const PredictorConfig& c) : config(c) {
  if (c.context < 1 || c.context > kMaxFrames) throw AdaptError("predictor context must be 1.." + std::to_string(kMaxFrames) + " frames");
  if (c.frame_skip < 1) throw AdaptError("frame skip must be >= 1");
  if (c.dim % c.heads != 0) throw AdaptError("predictor width " + std::to_string(c.dim) + " is not a multiple of its heads");
  latent_in = register_module("latent_in", torch::nn::Linear(c.latent_dim, c.dim));
  ee_in = register_module("ee_in", torch::nn::Linear(8, c.dim));
  if (c.cameras.empty() || c.tokens % c.views() != 0) {
    throw AdaptError("a predictor reads one or more cameras with the same tokens each (" + std::to_string(c.tokens) + " tokens, " +
                     std::to_string(c.views()) + " cameras)");
  }
  camera_in = register_module("camera_in", torch::nn::Linear(12 * c.views(), c.dim));
  spatial_pos = register_parameter("spatial_pos", torch::randn({1, 1, c.tokens, c.dim}) * 0.02);
  frame_pos = register_parameter("frame_pos", torch::randn({1, kMaxFrames, 1, c.dim}) * 0.02);
  kind_pos = register_parameter("kind_pos", torch::randn({1, 1, kConditionTokens, c.dim}) * 0.02);
  delta_scale = register_buffer("delta_scale", torch::ones({}));
  for (int i = 0; i < c.depth; ++i) {
    layers.push_back(register_module(
        "layer" + std::to_string(i),
        torch::nn::TransformerEncoderLayer(
            torch::nn::TransformerEncoderLayerOptions(c.dim, c.heads).dim_feedforward(4 * c.dim).dropout(0.0).activation(torch::kGELU))));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
  out = register_module("output_proj", torch::nn::Linear(c.dim, c.latent_dim));
  torch::NoGradGuard no_grad;
  out->weight.zero_();  // an untrained predictor is the copy-last-frame baseline
  out->bias.zero_();
}

WorldModel::WorldModel(const PredictorConfig& config) : config_(config), trunk_(config) {}

void WorldModel::AddEmbodiment(const EmbodimentSpec& spec, const Normalizer& norm) {
  auto it = specs_.find(spec.name);
  if (it != specs_.end()) {
    if (it->second.ToJson() != spec.ToJson()) {
      throw AdaptError("the model knows embodiment " + spec.name + " as " + it->second.ToJson().dump() + ", the data has " + spec.ToJson().dump());
    }
    return;
  }
  specs_[spec.name] = spec;
  adapters_.emplace(spec.name, Adapter(spec, config_.dim, config_.frame_skip));
  dynamics_.emplace(spec.name, DynamicsModel(spec.proprio_dim(), spec.action_dim));
  norms_[spec.name] = norm;
  if (!device_.is_cpu()) To(device_);
}

void WorldModel::RequireEmbodiment(const std::string& embodiment) const {
  if (Has(embodiment)) return;
  std::string known;
  for (const auto& [name, s] : specs_) known += (known.empty() ? "" : ", ") + name;
  throw AdaptError("the world model is for " + known + ", not " + embodiment + " (adapt --embodiment " + embodiment + " first)");
}

const EmbodimentSpec& WorldModel::spec(const std::string& embodiment) const {
  auto it = specs_.find(embodiment);
  if (it == specs_.end()) {
    std::string known;
    for (const auto& [name, s] : specs_) known += (known.empty() ? "" : ", ") + name;
    throw AdaptError("the model has no embodiment " + embodiment + " (it knows: " + known + ")");
  }
  return it->second;
}

Normalizer& WorldModel::normalizer(const std::string& embodiment) {
  spec(embodiment);
  return norms_.at(embodiment);
}

std::vector<std::string> WorldModel::embodiments() const {
  std::vector<std::string> names;
  for (const auto& [name, s] : specs_) names.push_back(name);
  return names;
}

std::vector<torch::Tensor> WorldModel::PredictorParameters(const std::string& embodiment, bool freeze_trunk) const {
  spec(embodiment);
  std::vector<torch::Tensor> params;
  if (!freeze_trunk) params = trunk_->parameters();
  for (const auto& p : adapters_.at(embodiment)->parameters()) params.push_back(p);
  return params;
}

std::vector<torch::Tensor> WorldModel::DynamicsParameters(const std::string& embodiment) const {
  spec(embodiment);
  return dynamics_.at(embodiment)->parameters();
}

std::vector<torch::Tensor> WorldModel::TrunkParameters() const { return trunk_->parameters(); }

std::vector<torch::Tensor> WorldModel::Parameters(const std::string& embodiment, bool freeze_trunk) const {
  auto params = PredictorParameters(embodiment, freeze_trunk);
  for (const auto& p : DynamicsParameters(embodiment)) params.push_back(p);
  return params;
}

void WorldModel::Train(bool on) {
  trunk_->train(on);
  for (auto& [name, a] : adapters_) a->train(on);
  for (auto& [name, d] : dynamics_) d->train(on);
}

void WorldModel::To(const torch::Device& device) {
  device_ = device;
  trunk_->to(device);
  for (auto& [name, a] : adapters_) a->to(device);
  for (auto& [name, d] : dynamics_) d->to(device);
  for (auto& [name, n] : norms_) {
    for (torch::Tensor* t : {&n.mean, &n.std, &n.delta_mean, &n.delta_std}) *t = t->to(device);
  }
}

torch::Tensor WorldModel::DynamicsDelta(const std::string& embodiment, const torch::Tensor& proprio_norm, const torch::Tensor& action) {
  spec(embodiment);
  return dynamics_.at(embodiment)->forward(proprio_norm, action);
}

torch::Tensor WorldModel::StepDynamics(const std::string& embodiment, const torch::Tensor& proprio, const torch::Tensor& action) {
  const Normalizer& n = normalizer(embodiment);
  const auto delta = DynamicsDelta(embodiment, n.Normalize(proprio), action);
  return proprio + delta * n.delta_std + n.delta_mean;
}

torch::Tensor WorldModel::Predict(const std::string& embodiment, const torch::Tensor& latents, const torch::Tensor& proprio,
                                  const torch::Tensor& actions, const torch::Tensor& camera) {
  const EmbodimentSpec& s = spec(embodiment);
  const Normalizer& n = norms_.at(embodiment);
  Adapter& adapter = adapters_.at(embodiment);
  const auto& c = config_;
  const int64_t b = latents.size(0), t = latents.size(1);
  if (t > c.context) throw AdaptError("predictor window of " + std::to_string(t) + " frames exceeds its context " + std::to_string(c.context));
  if (latents.size(2) != c.tokens || latents.size(3) != c.latent_dim) {
    throw AdaptError("latents are " + std::to_string(latents.size(2)) + "x" + std::to_string(latents.size(3)) +
                     " per frame; the predictor was built for " + std::to_string(c.tokens) + "x" + std::to_string(c.latent_dim) +
                     " (another encoder?)");
  }
  if (actions.size(-1) != s.action_dim * c.frame_skip) {
    throw AdaptError("model-step actions have " + std::to_string(actions.size(-1)) + " dimensions; embodiment " + s.name + " has " +
                     std::to_string(s.action_dim) + " per control step and the model " + std::to_string(c.frame_skip) +
                     " control steps per model step");
  }
  const auto pn = n.Normalize(proprio);
  const auto action_tok = adapter->action->forward(actions) + adapter->token;
  const collect::ProprioLayout l = s.layout();
  const auto joint_tok = adapter->joints->forward(pn.slice(-1, l.joint_pos(), l.ee_pos()));  // positions and velocities
  const auto gripper = s.gripper > 0 ? pn.slice(-1, l.gripper_pos()).mean(-1, true) : torch::zeros({b, t, 1}, latents.options());
  const auto ee_tok = trunk_->ee_in->forward(torch::cat({proprio.slice(-1, l.ee_pos(), l.gripper_pos()), gripper}, -1));
  const auto cam_tok = trunk_->camera_in->forward(camera).unsqueeze(1).expand({b, t, c.dim});
  const auto cond = torch::stack({action_tok, joint_tok, ee_tok, cam_tok}, 2) + trunk_->kind_pos;
  // Every latent token also gets the frame's conditioning directly (added), so where and how the
  // scene changes need not be found through attention alone.
  const auto broadcast = (action_tok + joint_tok + ee_tok + cam_tok).unsqueeze(2);
  auto x = torch::cat({cond, trunk_->latent_in->forward(latents) + trunk_->spatial_pos + broadcast}, 2) + trunk_->frame_pos.slice(1, 0, t);
  const int64_t per_frame = kConditionTokens + c.tokens;
  // Block-causal mask: frame of the key <= frame of the query.
  const auto frame = torch::arange(t, torch::TensorOptions(torch::kLong).device(latents.device())).repeat_interleave(per_frame);
  const auto mask = torch::zeros({t * per_frame, t * per_frame}, latents.options())
                        .masked_fill(frame.unsqueeze(0) > frame.unsqueeze(1), -std::numeric_limits<float>::infinity());
  x = x.reshape({b, t * per_frame, c.dim}).transpose(0, 1);  // sequence-first for the C++ transformer layers
  for (auto& layer : trunk_->layers) x = layer->forward(x, mask);
  x = trunk_->norm->forward(x.transpose(0, 1)).reshape({b, t, per_frame, c.dim}).slice(2, kConditionTokens);
  return latents + trunk_->out->forward(x) * trunk_->delta_scale;
}

void WorldModel::SetLatentDeltaScale(double scale) {
  if (!(scale > 0) || !std::isfinite(scale)) throw AdaptError("latent change scale must be positive, got " + std::to_string(scale));
  torch::NoGradGuard no_grad;
  trunk_->delta_scale.fill_(scale);
}

double WorldModel::latent_delta_scale() const { return trunk_->delta_scale.item<double>(); }

torch::Tensor WorldModel::Rollout(const std::string& embodiment, const torch::Tensor& latents, const torch::Tensor& proprio,
                                  const torch::Tensor& actions, const torch::Tensor& camera, int horizon, torch::Tensor* proprio_out) {
  const int64_t k = latents.size(1);
  if (actions.size(1) < k + horizon - 1) throw AdaptError("rollout needs actions for every input frame");
  std::vector<torch::Tensor> lat = latents.unbind(1), prop = proprio.unbind(1), out_lat, out_prop;
  for (int h = 0; h < horizon; ++h) {
    const int64_t t = static_cast<int64_t>(lat.size());
    const int64_t start = std::max<int64_t>(0, t - config_.context);
    const auto window_lat = torch::stack(std::vector<torch::Tensor>(lat.begin() + start, lat.end()), 1);
    const auto window_prop = torch::stack(std::vector<torch::Tensor>(prop.begin() + start, prop.end()), 1);
    const auto next = Predict(embodiment, window_lat, window_prop, actions.slice(1, start, t), camera).select(1, -1);
    // The dynamics model steps every control step of the model step.
    const int a = spec(embodiment).action_dim;
    auto next_prop = prop.back();
    for (int j = 0; j < config_.frame_skip; ++j)
      next_prop = StepDynamics(embodiment, next_prop, actions.select(1, t - 1).slice(-1, j * a, (j + 1) * a));
    lat.push_back(next);
    prop.push_back(next_prop);
    out_lat.push_back(next);
    out_prop.push_back(next_prop);
  }
  if (proprio_out) *proprio_out = torch::stack(out_prop, 1);
  return torch::stack(out_lat, 1);
}

std::vector<std::string> WorldModel::InitFrom(const WorldModel& other, const std::string& embodiment) {
  if (other.config_.ToJson() != config_.ToJson()) {
    throw AdaptError("cannot initialize from a predictor with other sizes (" + other.config_.ToJson().dump() + " vs " + config_.ToJson().dump() +
                     ")");
  }
  std::vector<std::string> copied;
  CopyModule(*other.trunk_, *trunk_);
  copied.push_back("trunk");
  const EmbodimentSpec& mine = spec(embodiment);
  if (other.Has(embodiment) && other.spec(embodiment).ToJson() == mine.ToJson()) {
    CopyModule(*other.adapters_.at(embodiment), *adapters_.at(embodiment));
    CopyModule(*other.dynamics_.at(embodiment), *dynamics_.at(embodiment));
    copied.push_back(embodiment + " adapters and dynamics");
    return copied;
  }
  // Another robot with the same action space (e.g. end-effector deltas on every arm): its action
  // embedding means the same thing here.
  for (const auto& [name, s] : other.specs_) {
    if (s.action_kind == mine.action_kind && s.action_dim == mine.action_dim) {
      torch::NoGradGuard no_grad;
      adapters_.at(embodiment)->action->weight.copy_(other.adapters_.at(name)->action->weight);
      adapters_.at(embodiment)->action->bias.copy_(other.adapters_.at(name)->action->bias);
      copied.push_back("action embedding of " + name);
      break;
    }
  }
  return copied;
}

void WorldModel::Save(torch::serialize::OutputArchive& archive) const {
  nlohmann::json specs = nlohmann::json::array();
  for (const auto& [name, s] : specs_) specs.push_back(s.ToJson());
  archive.write("embody_format", c10::IValue(std::string("embody-adapt-v1")));
  archive.write("predictor_config", c10::IValue(config_.ToJson().dump()));
  archive.write("embodiments", c10::IValue(specs.dump()));
  WriteModule(archive, "trunk", *trunk_);
  for (const auto& [name, s] : specs_) {
    WriteModule(archive, "adapter." + name, *adapters_.at(name));
    WriteModule(archive, "dynamics." + name, *dynamics_.at(name));
    const Normalizer& n = norms_.at(name);
    archive.write("norm." + name + ".mean", n.mean, true);
    archive.write("norm." + name + ".std", n.std, true);
    archive.write("norm." + name + ".delta_mean", n.delta_mean, true);
    archive.write("norm." + name + ".delta_std", n.delta_std, true);
  }
}

WorldModel WorldModel::Load(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read("embody_format", value) || !value.isString() || value.toStringRef() != "embody-adapt-v1") {
    throw AdaptError("not a stage-two model (no embody-adapt-v1 format tag)");
  }
  archive.read("predictor_config", value);
  WorldModel model(PredictorConfig::FromJson(nlohmann::json::parse(value.toStringRef())));
  ReadModule(archive, "trunk", *model.trunk_);
  archive.read("embodiments", value);
  for (const auto& j : nlohmann::json::parse(value.toStringRef())) {
    const EmbodimentSpec s = EmbodimentSpec::FromJson(j);
    Normalizer n;
    archive.read("norm." + s.name + ".mean", n.mean, true);
    archive.read("norm." + s.name + ".std", n.std, true);
    archive.read("norm." + s.name + ".delta_mean", n.delta_mean, true);
    archive.read("norm." + s.name + ".delta_std", n.delta_std, true);
    model.AddEmbodiment(s, n);
    ReadModule(archive, "adapter." + s.name, *model.adapters_.at(s.name));
    ReadModule(archive, "dynamics." + s.name, *model.dynamics_.at(s.name));
  }
  return model;
}

torch::Tensor CameraFeatures(const std::vector<double>& e) {
  if (e.empty() || e.size() % 16 != 0) throw AdaptError("camera extrinsics must be 4x4 (one per camera)");
  std::vector<double> f;
  for (size_t at = 0; at < e.size(); at += 16) {
    for (size_t i : {0, 1, 2, 4, 5, 6, 8, 9, 10, 3, 7, 11}) f.push_back(e[at + i]);
  }
  return torch::tensor(f, DefaultFloat());
}

torch::Tensor LatentL1(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().mean({0, 2, 3}); }

void SaveWorldModel(const WorldModel& model, const std::string& encoder_hash, const nlohmann::json& info, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  model.Save(archive);
  archive.write("encoder_hash", c10::IValue(encoder_hash));
  archive.write("info", c10::IValue(info.dump()));
  SaveArchiveAtomically(archive, path);
}

WorldModel LoadWorldModel(const fs::path& path, std::string* encoder_hash, nlohmann::json* info) {
  std::error_code ec;
  const fs::path file = fs::is_directory(path, ec) ? path / "model.pt" : path;
  if (!fs::exists(file, ec)) throw AdaptError("no model " + file.string());
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string(), torch::kCPU);  // trained on any device, read on the CPU
  } catch (const c10::Error&) {
    throw AdaptError(file.string() + " is not a stage-two model (not a LibTorch archive)");
  }
  try {
    WorldModel model = WorldModel::Load(archive);
    c10::IValue value;
    archive.read("encoder_hash", value);
    if (encoder_hash) *encoder_hash = value.toStringRef();
    archive.read("info", value);
    if (info) *info = nlohmann::json::parse(value.toStringRef());
    return model;
  } catch (const AdaptError& e) {
    throw AdaptError(file.string() + ": " + e.what());
  } catch (const c10::Error& e) {
    throw AdaptError(file.string() + " is not a stage-two model: " + e.what_without_backtrace());
  }
}

}  // namespace embody::adapt
