#include "adapt/world_model/export.h"

#include <sstream>

#include "adapt/core/error.h"
#include "sim/atomic_file.h"

namespace embody::adapt {
namespace {

// "layer0.self_attn.in_proj_weight" -> "trunk_layer0_self_attn_in_proj_weight"
std::string Flat(const std::string& prefix, const std::string& name) {
  std::string out = prefix + "_" + name;
  for (char& c : out) c = c == '.' ? '_' : c;
  return out;
}

void RegisterAll(torch::jit::Module& m, const std::string& prefix, const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) m.register_parameter(Flat(prefix, p.key()), p.value().detach().clone(), false);
  for (const auto& b : module.named_buffers()) m.register_buffer(Flat(prefix, b.key()), b.value().detach().clone());
}

// The TorchScript source: WorldModel::Predict, StepDynamics and Rollout for one embodiment, with the
// sizes fixed at export (layers unrolled).
std::string Source(const PredictorConfig& c, const EmbodimentSpec& s) {
  const collect::ProprioLayout l = s.layout();
  const int head_dim = c.dim / c.heads;
  std::ostringstream o;
  o << "def predict(self, latents: Tensor, proprio: Tensor, actions: Tensor, camera: Tensor) -> Tensor:\n"
    << "    b = latents.size(0)\n"
    << "    t = latents.size(1)\n"
    << "    pn = (proprio - self.norm_mean) / self.norm_std\n"
    << "    action_tok = torch.linear(actions, self.adapter_action_weight, self.adapter_action_bias) + self.adapter_token\n"
    << "    joint_tok = torch.linear(pn[:, :, " << l.joint_pos() << ":" << l.ee_pos() << "], self.adapter_joints_weight, self.adapter_joints_bias)\n";
  if (s.gripper > 0) {
    o << "    gripper = pn[:, :, " << l.gripper_pos() << ":].mean(-1, keepdim=True)\n";
  } else {
    o << "    gripper = torch.zeros([b, t, 1], dtype=latents.dtype)\n";
  }
  o << "    ee_tok = torch.linear(torch.cat([proprio[:, :, " << l.ee_pos() << ":" << l.gripper_pos()
    << "], gripper], -1), self.trunk_ee_in_weight, self.trunk_ee_in_bias)\n"
    << "    cam_tok = torch.linear(camera, self.trunk_camera_in_weight, self.trunk_camera_in_bias).unsqueeze(1).expand(b, t, " << c.dim << ")\n"
    << "    cond = torch.stack([action_tok, joint_tok, ee_tok, cam_tok], 2) + self.trunk_kind_pos\n"
    << "    broadcast = (action_tok + joint_tok + ee_tok + cam_tok).unsqueeze(2)\n"
    << "    x = torch.cat([cond, torch.linear(latents, self.trunk_latent_in_weight, self.trunk_latent_in_bias) + self.trunk_spatial_pos + "
       "broadcast], 2)\n"
    << "    x = x + self.trunk_frame_pos[:, :t]\n"
    << "    per_frame = " << 4 + c.tokens << "\n"
    << "    n = t * per_frame\n"
    << "    frame = torch.arange(t).repeat_interleave(per_frame)\n"
    << "    mask = torch.zeros([n, n], dtype=latents.dtype).masked_fill(frame.unsqueeze(0) > frame.unsqueeze(1), float('-inf'))\n"
    << "    x = x.reshape(b, n, " << c.dim << ")\n";
  for (int i = 0; i < c.depth; ++i) {
    const std::string p = "self.trunk_layer" + std::to_string(i) + "_";
    o << "    qkv = torch.linear(x, " << p << "self_attn_in_proj_weight, " << p << "self_attn_in_proj_bias).chunk(3, -1)\n"
      << "    q = qkv[0].reshape(b, n, " << c.heads << ", " << head_dim << ").transpose(1, 2) * " << 1.0 / std::sqrt(static_cast<double>(head_dim))
      << "\n"
      << "    k = qkv[1].reshape(b, n, " << c.heads << ", " << head_dim << ").transpose(1, 2)\n"
      << "    v = qkv[2].reshape(b, n, " << c.heads << ", " << head_dim << ").transpose(1, 2)\n"
      << "    att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) + mask, -1)\n"
      << "    a = torch.linear(torch.matmul(att, v).transpose(1, 2).reshape(b, n, " << c.dim << "), " << p << "self_attn_out_proj_weight, " << p
      << "self_attn_out_proj_bias)\n"
      << "    x = torch.layer_norm(x + a, [" << c.dim << "], " << p << "norm1_weight, " << p << "norm1_bias, 1e-05)\n"
      << "    f = torch.linear(torch.gelu(torch.linear(x, " << p << "linear1_weight, " << p << "linear1_bias)), " << p << "linear2_weight, " << p
      << "linear2_bias)\n"
      << "    x = torch.layer_norm(x + f, [" << c.dim << "], " << p << "norm2_weight, " << p << "norm2_bias, 1e-05)\n";
  }
  o << "    x = torch.layer_norm(x, [" << c.dim << "], self.trunk_norm_weight, self.trunk_norm_bias, 1e-05)\n"
    << "    x = x.reshape(b, t, per_frame, " << c.dim << ")[:, :, 4:]\n"
    << "    return latents + torch.linear(x, self.trunk_output_proj_weight, self.trunk_output_proj_bias) * self.trunk_delta_scale\n"
    << "\n"
    << "def step_dynamics(self, proprio: Tensor, action: Tensor) -> Tensor:\n"
    << "    pn = (proprio - self.norm_mean) / self.norm_std\n"
    << "    h = torch.gelu(torch.linear(torch.cat([pn, action], -1), self.dynamics_net_0_weight, self.dynamics_net_0_bias))\n"
    << "    h = torch.gelu(torch.linear(h, self.dynamics_net_2_weight, self.dynamics_net_2_bias))\n"
    << "    delta = torch.linear(h, self.dynamics_net_4_weight, self.dynamics_net_4_bias)\n"
    << "    return proprio + delta * self.norm_delta_std + self.norm_delta_mean\n"
    << "\n"
    << "def rollout(self, latents: Tensor, proprio: Tensor, actions: Tensor, camera: Tensor, horizon: int) -> Tuple[Tensor, Tensor]:\n"
    << "    lat = list(latents.unbind(1))\n"
    << "    prop = list(proprio.unbind(1))\n"
    << "    out_lat: List[Tensor] = []\n"
    << "    out_prop: List[Tensor] = []\n"
    << "    for h in range(horizon):\n"
    << "        t = len(lat)\n"
    << "        start = max(0, t - self.context)\n"
    << "        nxt = self.predict(torch.stack(lat[start:], 1), torch.stack(prop[start:], 1), actions[:, start:t], camera)[:, -1]\n"
    << "        p = prop[-1]\n"
    << "        for j in range(self.frame_skip):\n"
    << "            p = self.step_dynamics(p, actions[:, t - 1, j * self.action_dim:(j + 1) * self.action_dim])\n"
    << "        lat.append(nxt)\n"
    << "        prop.append(p)\n"
    << "        out_lat.append(nxt)\n"
    << "        out_prop.append(p)\n"
    << "    return torch.stack(out_lat, 1), torch.stack(out_prop, 1)\n";
  return o.str();
}

}  // namespace

torch::jit::Module ScriptWorldModel(const WorldModel& model, const std::string& embodiment, const std::string& encoder_hash) {
  const EmbodimentSpec& spec = model.spec(embodiment);
  const PredictorConfig& c = model.config();
  torch::jit::Module m("EmbodyWorldModel");
  RegisterAll(m, "trunk", *model.trunk());
  RegisterAll(m, "adapter", *model.adapter(embodiment));
  RegisterAll(m, "dynamics", *model.dynamics(embodiment));
  const Normalizer& n = model.normalizer(embodiment);
  m.register_buffer("norm_mean", n.mean.detach().clone());
  m.register_buffer("norm_std", n.std.detach().clone());
  m.register_buffer("norm_delta_mean", n.delta_mean.detach().clone());
  m.register_buffer("norm_delta_std", n.delta_std.detach().clone());
  m.register_attribute("frame_skip", c10::IntType::get(), c.frame_skip);
  m.register_attribute("context", c10::IntType::get(), c.context);
  m.register_attribute("action_dim", c10::IntType::get(), spec.action_dim);
  m.register_attribute("proprio_dim", c10::IntType::get(), spec.proprio_dim());
  m.register_attribute("embodiment", c10::StringType::get(), spec.name);
  m.register_attribute("encoder_hash", c10::StringType::get(), encoder_hash);
  m.define(Source(c, spec));
  m.eval();
  return m;
}

double ExportWorldModel(WorldModel& model, const std::string& embodiment, const std::string& encoder_hash, const std::filesystem::path& path) {
  torch::jit::Module m = ScriptWorldModel(model, embodiment, encoder_hash);
  // The check: both on the same random inputs.
  const EmbodimentSpec& s = model.spec(embodiment);
  const PredictorConfig& c = model.config();
  torch::NoGradGuard no_grad;
  model.Train(false);
  torch::manual_seed(0);
  const int64_t b = 3, t = c.context, p = s.proprio_dim();
  const auto& n = model.normalizer(embodiment);
  const auto latents = torch::randn({b, t, c.tokens, c.latent_dim}), proprio = n.mean + n.std * torch::randn({b, t, p});
  const auto actions = torch::rand({b, t, c.frame_skip * s.action_dim}) * 2 - 1, camera = torch::randn({b, 12 * c.views()});
  const auto mine = model.Predict(embodiment, latents, proprio, actions, camera);
  const auto scripted = m.run_method("predict", latents, proprio, actions, camera).toTensor();
  const auto step = model.StepDynamics(embodiment, proprio.select(1, 0), actions.select(1, 0).slice(-1, 0, s.action_dim));
  const auto scripted_step = m.run_method("step_dynamics", proprio.select(1, 0), actions.select(1, 0).slice(-1, 0, s.action_dim)).toTensor();
  const double error = std::max((mine - scripted).abs().max().item<double>(), (step - scripted_step).abs().max().item<double>());
  if (!(error <= 1e-4)) {
    throw AdaptError("the TorchScript export does not reproduce the model (max difference " + std::to_string(error) + "); not written");
  }
  sim::WriteFileAtomically(path, [&](const std::filesystem::path& tmp) { m.save(tmp.string()); });
  return error;
}

}  // namespace embody::adapt
