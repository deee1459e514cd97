// A MuJoCo model and its data, owned together: loading (file or string) with errors that name the
// file and line, stepping with gravity compensation, the full physical state as a flat vector for
// exact replay, and MuJoCo warnings turned into exceptions instead of being ignored.
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <mujoco/mujoco.h>

namespace embody::sim {

/// A model that does not load, or a name that is not in the model.
class SimError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The simulation went unstable: a MuJoCo warning (bad qacc, contact buffer full, ...) or a NaN.
class UnstableError : public SimError {
 public:
  using SimError::SimError;
};

struct MjModelDeleter {
  void operator()(mjModel* m) const { mj_deleteModel(m); }
};
struct MjDataDeleter {
  void operator()(mjData* d) const { mj_deleteData(d); }
};
using MjModelPtr = std::unique_ptr<mjModel, MjModelDeleter>;
using MjDataPtr = std::unique_ptr<mjData, MjDataDeleter>;

/// Loads an MJCF file. @throws SimError "FILE:LINE: MuJoCo's message" (or "no such file").
MjModelPtr LoadModelFile(const std::filesystem::path& path);
/// Loads MJCF text; `name` stands for the file in error messages.
/// @throws SimError "NAME:LINE: MuJoCo's message".
MjModelPtr LoadModelString(const std::string& xml, const std::string& name = "<string>");

/// Id of a named model element. @throws SimError naming the element type, name and model.
int RequireId(const mjModel* m, mjtObj type, const std::string& name);

/// A model with its data. Movable, not copyable (use Clone()).
class World {
 public:
  explicit World(MjModelPtr model);
  static World FromFile(const std::filesystem::path& path) { return World(LoadModelFile(path)); }
  static World FromString(const std::string& xml) { return World(LoadModelString(xml)); }

  /// An independent copy: its own model and data (for worker threads).
  World Clone() const;

  const mjModel* model() const { return model_.get(); }
  mjModel* mutable_model() { return model_.get(); }
  const mjData* data() const { return data_.get(); }
  mjData* mutable_data() { return data_.get(); }

  /// Resets data to qpos0 and runs mj_forward.
  void Reset();
  /// Recomputes derived quantities (positions, sites, contacts) for the current state.
  void Forward();
  /// Advances `n` physics steps, then runs mj_forward so that derived quantities (body and camera
  /// poses, contacts) describe the new state. Gravity/Coriolis torques are fed forward on the
  /// compensated dofs.
  /// @throws UnstableError on any new MuJoCo warning or a non-finite qpos/qvel.
  void Step(int n = 1);

  /// Degrees of freedom whose bias forces (gravity, Coriolis) are cancelled in Step().
  void SetGravityCompensation(std::vector<int> dofs) { compensated_dofs_ = std::move(dofs); }

  /// Length of the flat state: time, qpos, qvel, act, ctrl, qacc_warmstart, qfrc_applied,
  /// xfrc_applied, mocap_pos, mocap_quat. Everything the next step depends on.
  int state_size() const;
  void GetState(double* out) const;
  std::vector<double> GetState() const;
  /// Restores a state from GetState() and runs mj_forward. @throws SimError on a size mismatch.
  void SetState(const double* state, int size);
  void SetState(const std::vector<double>& state) { SetState(state.data(), static_cast<int>(state.size())); }

  /// @throws UnstableError when a MuJoCo warning was raised since the last check or state is not finite.
  void CheckStable();

 private:
  void CopyIn(const double* state);

  MjModelPtr model_;
  MjDataPtr data_;
  std::vector<int> compensated_dofs_;
  std::vector<int> warnings_seen_;
};

}  // namespace embody::sim
