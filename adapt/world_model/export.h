// `adapt --export`: one embodiment's interaction predictor and dynamics model as a TorchScript module
// that Python users load with `torch.jit.load` (no Embody needed):
//
//   m = torch.jit.load("models/franka/world_model.ts")
//   next_latents = m.predict(latents, proprio, actions, camera)     # (B,T,N,D), (B,T,P), (B,T,k*A), (B,12)
//   next_proprio = m.step_dynamics(proprio, action)                  # (B,P), (B,A) -> (B,P), one control step
//   latents, proprio = m.rollout(latents, proprio, actions, camera, horizon)
//   m.frame_skip, m.context, m.action_dim, m.proprio_dim, m.embodiment, m.encoder_hash
//
// The module is the same computation as WorldModel::Predict / StepDynamics / Rollout, written out in
// TorchScript over the model's weights (normalizers included); the export runs both on random inputs
// and refuses to write a module that does not reproduce the C++ model.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <filesystem>
#include <string>

#include <torch/script.h>

#include "adapt/world_model/world_model.h"

namespace embody::adapt {

/// The scripted module for `embodiment`. @throws AdaptError for an unknown embodiment.
torch::jit::Module ScriptWorldModel(const WorldModel& model, const std::string& embodiment, const std::string& encoder_hash);

/// Scripts, checks against `model` (max |difference| of predict and step_dynamics on random inputs,
/// returned) and writes `path` atomically. @throws AdaptError when the check fails (> 1e-4).
double ExportWorldModel(WorldModel& model, const std::string& embodiment, const std::string& encoder_hash, const std::filesystem::path& path);

}  // namespace embody::adapt
