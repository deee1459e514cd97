// Controllers that turn actions into position-actuator targets for an embodiment:
// an end-effector delta controller (damped-least-squares differential IK through mj_jacSite,
// joint limits respected, null-space pull toward home on redundant arms), joint-position targets,
// and the gripper.
#pragma once

#include <array>
#include <vector>

#include <mujoco/mujoco.h>

#include "robots/embodiment.h"

namespace embody::sim {

class World;

/// Position and orientation (w, x, y, z) of a site in world coordinates.
struct SitePose {
  std::array<double, 3> pos;
  std::array<double, 4> quat;
};
SitePose GetSitePose(const mjData* d, int site_id);
/// Position of a body's frame in world coordinates (`xpos`).
std::array<double, 3> GetBodyPos(const mjData* d, int body_id);

/// The rotation taking orientation `from` to `to` (quaternions w,x,y,z), as a world-frame axis-angle
/// vector: the `drot` that EeDeltaTargets needs to turn `from` into `to`.
std::array<double, 3> OrientationError(const std::array<double, 4>& to, const std::array<double, 4>& from);

/// Physics steps per control step: round(1 / (control_hz * timestep)), at least 1.
int PhysicsStepsPerControl(const robots::Embodiment& embodiment, const mjModel* m);

class RobotController {
 public:
  /// Resolves the embodiment's joints, actuators, sites and gripper in `m`.
  /// @throws SimError naming the first element the model lacks.
  RobotController(const mjModel* m, const robots::Embodiment& embodiment);

  const robots::Embodiment& embodiment() const { return embodiment_; }
  int num_joints() const { return static_cast<int>(joint_ids_.size()); }
  /// Velocity indices (dofs) of the controlled joints, e.g. for gravity compensation.
  const std::vector<int>& dofs() const { return dof_ids_; }
  int ee_site() const { return ee_site_; }

  /// Puts the robot at its home pose at rest (targets at home, gripper open) and runs mj_forward.
  /// Also enables gravity compensation on the world when the embodiment asks for it.
  void ResetToHome(World* world) const;

  std::vector<double> JointPositions(const mjData* d) const;
  std::vector<double> JointVelocities(const mjData* d) const;
  /// The current actuator targets of the controlled joints.
  std::vector<double> JointTargets(const mjData* d) const;
  /// Sets joint targets, clamped to joint and control ranges. @pre q.size() == num_joints().
  void SetJointTargets(mjData* d, const std::vector<double>& q) const;

  /// Joint targets that move the end effector by `dpos` (m, world frame) and rotate it by `drot`
  /// (axis-angle, rad, world frame) from its measured pose; clamped to joint limits. Arms only.
  std::vector<double> EeDeltaTargets(const mjModel* m, const mjData* d, const std::array<double, 3>& dpos, const std::array<double, 3>& drot) const;
  /// EeDeltaTargets followed by SetJointTargets.
  void ApplyEeDelta(const mjModel* m, mjData* d, const std::array<double, 3>& dpos, const std::array<double, 3>& drot) const;

  /// Gripper command: 0 = open, 1 = closed (clamped). No-op without a gripper.
  void SetGripper(mjData* d, double closed) const;
  /// Gripper opening as a fraction: 0 = open, 1 = closed (from the actuated finger joint).
  double GripperClosedFraction(const mjData* d) const;

  /// Applies one normalized action in [-1,1] (clamped). Arms: [dx dy dz drx dry drz gripper] scaled
  /// by action_scale (gripper -1 open, +1 closed). Humanoids: joint-target deltas scaled by
  /// action_scale.joint. Returns the joint targets it set. @pre action has action_dim() values.
  std::vector<double> ApplyAction(const mjModel* m, mjData* d, const std::vector<double>& action) const;

 private:
  robots::Embodiment embodiment_;
  std::vector<int> joint_ids_, qpos_ids_, dof_ids_, actuator_ids_;
  std::vector<double> lower_, upper_;
  int ee_site_ = -1;
  int gripper_actuator_ = -1;
  int gripper_qpos_ = -1;
};

}  // namespace embody::sim
