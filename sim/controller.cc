#include "sim/controller.h"

#include <algorithm>
#include <cmath>

#include "sim/world.h"

namespace embody::sim {
namespace {

constexpr double kNullSpaceGain = 0.2;

// The position actuator that drives joint `joint_id`, or -1.
int ActuatorForJoint(const mjModel* m, int joint_id) {
  for (int a = 0; a < m->nu; ++a) {
    if (m->actuator_trntype[a] == mjTRN_JOINT && m->actuator_trnid[2 * a] == joint_id) return a;
  }
  return -1;
}

}  // namespace

SitePose GetSitePose(const mjData* d, int site_id) {
  SitePose pose;
  std::copy(d->site_xpos + 3 * site_id, d->site_xpos + 3 * site_id + 3, pose.pos.begin());
  mju_mat2Quat(pose.quat.data(), d->site_xmat + 9 * site_id);
  return pose;
}

std::array<double, 3> GetBodyPos(const mjData* d, int body_id) {
  const double* p = d->xpos + 3 * body_id;
  return {p[0], p[1], p[2]};
}

std::array<double, 3> OrientationError(const std::array<double, 4>& to, const std::array<double, 4>& from) {
  double inv[4], diff[4];
  mju_negQuat(inv, from.data());
  mju_mulQuat(diff, to.data(), inv);
  std::array<double, 3> v;
  mju_quat2Vel(v.data(), diff, 1.0);
  return v;
}

int PhysicsStepsPerControl(const robots::Embodiment& embodiment, const mjModel* m) {
  return std::max(1, static_cast<int>(std::lround(1.0 / (embodiment.control_hz * m->opt.timestep))));
}

RobotController::RobotController(const mjModel* m, const robots::Embodiment& embodiment) : embodiment_(embodiment) {
  for (const auto& name : embodiment.joints) {
    const int j = RequireId(m, mjOBJ_JOINT, name);
    if (m->jnt_type[j] != mjJNT_HINGE && m->jnt_type[j] != mjJNT_SLIDE) {
      throw SimError("joint \"" + name + "\" must be a hinge or slide joint to be controlled");
    }
    const int a = ActuatorForJoint(m, j);
    if (a < 0) throw SimError("joint \"" + name + "\" has no actuator driving it");
    // Embody writes joint-angle targets: the actuator must be a position servo (MuJoCo's <position>:
    // an affine bias with -kp on the position). A torque <motor> would take the angle as a torque.
    if (m->actuator_biastype[a] != mjBIAS_AFFINE || !(m->actuator_biasprm[mjNBIAS * a + 1] < 0)) {
      const char* actuator = mj_id2name(m, mjOBJ_ACTUATOR, a);
      throw SimError("joint \"" + name + "\" is driven by actuator \"" + (actuator ? actuator : std::to_string(a)) +
                     "\", which is not a position servo (a <motor> or <velocity> actuator): Embody sends joint-angle targets; "
                     "use <position joint=\"" +
                     name + "\" kp=\"...\"/> (kp about 100-300 for an arm joint)");
    }
    joint_ids_.push_back(j);
    qpos_ids_.push_back(m->jnt_qposadr[j]);
    dof_ids_.push_back(m->jnt_dofadr[j]);
    actuator_ids_.push_back(a);
    double lo = -mjMAXVAL, hi = mjMAXVAL;
    if (m->jnt_limited[j]) {
      lo = m->jnt_range[2 * j];
      hi = m->jnt_range[2 * j + 1];
    }
    if (m->actuator_ctrllimited[a]) {
      lo = std::max(lo, m->actuator_ctrlrange[2 * a]);
      hi = std::min(hi, m->actuator_ctrlrange[2 * a + 1]);
    }
    lower_.push_back(lo);
    upper_.push_back(hi);
  }
  // A fixed base: the IK, home pose and tasks assume the robot does not float.
  for (int b = RequireId(m, mjOBJ_BODY, embodiment.base_body); b > 0; b = m->body_parentid[b]) {
    for (int k = 0; k < m->body_jntnum[b]; ++k) {
      if (m->jnt_type[m->body_jntadr[b] + k] != mjJNT_FREE) continue;
      const char* body = mj_id2name(m, mjOBJ_BODY, b);
      throw SimError("the robot's base \"" + embodiment.base_body + "\" floats (body \"" + (body ? body : "?") +
                     "\" has a free joint): Embody controls fixed-base robots; remove the <freejoint> (mount the robot) to use it");
    }
  }
  if (!embodiment.ee_site.empty()) ee_site_ = RequireId(m, mjOBJ_SITE, embodiment.ee_site);
  for (const auto& site : embodiment.ee_sites) RequireId(m, mjOBJ_SITE, site);
  RequireId(m, mjOBJ_BODY, embodiment.base_body);
  if (!embodiment.gripper_actuator.empty()) {
    gripper_actuator_ = RequireId(m, mjOBJ_ACTUATOR, embodiment.gripper_actuator);
    if (m->actuator_trntype[gripper_actuator_] == mjTRN_JOINT) {
      gripper_qpos_ = m->jnt_qposadr[m->actuator_trnid[2 * gripper_actuator_]];
    }
  }
}

void RobotController::ResetToHome(World* world) const {
  mjData* d = world->mutable_data();
  for (int i = 0; i < num_joints(); ++i) {
    const double q = std::clamp(embodiment_.home[i], lower_[i], upper_[i]);
    d->qpos[qpos_ids_[i]] = q;
    d->qvel[dof_ids_[i]] = 0;
  }
  SetJointTargets(d, embodiment_.home);
  SetGripper(d, 0.0);
  if (gripper_qpos_ >= 0) d->qpos[gripper_qpos_] = embodiment_.gripper_open;
  world->SetGravityCompensation(embodiment_.gravity_compensation ? dof_ids_ : std::vector<int>{});
  world->Forward();
}

std::vector<double> RobotController::JointPositions(const mjData* d) const {
  std::vector<double> q(num_joints());
  for (int i = 0; i < num_joints(); ++i) q[i] = d->qpos[qpos_ids_[i]];
  return q;
}

std::vector<double> RobotController::JointVelocities(const mjData* d) const {
  std::vector<double> v(num_joints());
  for (int i = 0; i < num_joints(); ++i) v[i] = d->qvel[dof_ids_[i]];
  return v;
}

std::vector<double> RobotController::JointTargets(const mjData* d) const {
  std::vector<double> q(num_joints());
  for (int i = 0; i < num_joints(); ++i) q[i] = d->ctrl[actuator_ids_[i]];
  return q;
}

void RobotController::SetJointTargets(mjData* d, const std::vector<double>& q) const {
  for (int i = 0; i < num_joints(); ++i) d->ctrl[actuator_ids_[i]] = std::clamp(q[i], lower_[i], upper_[i]);
}

std::vector<double> RobotController::EeDeltaTargets(const mjModel* m, const mjData* d, const std::array<double, 3>& dpos,
                                                    const std::array<double, 3>& drot) const {
  if (ee_site_ < 0) throw SimError("embodiment \"" + embodiment_.name + "\" has no end-effector site");
  const int n = num_joints();
  std::vector<mjtNum> jacp(3 * m->nv), jacr(3 * m->nv);
  mj_jacSite(m, d, jacp.data(), jacr.data(), ee_site_);
  // J: 6 x n, the columns of the controlled dofs.
  std::vector<mjtNum> J(6 * n);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < n; ++c) {
      J[r * n + c] = jacp[r * m->nv + dof_ids_[c]];
      J[(r + 3) * n + c] = jacr[r * m->nv + dof_ids_[c]];
    }
  }
  // Damped least squares: dq = J^T (J J^T + lambda^2 I)^-1 e.
  const double lambda2 = embodiment_.ik_damping * embodiment_.ik_damping;
  mjtNum JJt[36];
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 6; ++c) {
      mjtNum s = 0;
      for (int k = 0; k < n; ++k) s += J[r * n + k] * J[c * n + k];
      JJt[r * 6 + c] = s + (r == c ? lambda2 : 0);
    }
  }
  mju_cholFactor(JJt, 6, 0);
  const mjtNum err[6] = {dpos[0], dpos[1], dpos[2], drot[0], drot[1], drot[2]};
  mjtNum y[6];
  mju_cholSolve(y, JJt, err, 6);
  std::vector<double> q = JointPositions(d);
  std::vector<double> dq(n, 0.0);
  for (int c = 0; c < n; ++c) {
    for (int r = 0; r < 6; ++r) dq[c] += J[r * n + c] * y[r];
  }
  // Redundant arms: pull toward home in the (approximate) null space, dq += (I - J+ J) k (home - q).
  if (n > 6) {
    std::vector<double> pull(n);
    for (int c = 0; c < n; ++c) pull[c] = kNullSpaceGain * (embodiment_.home[c] - q[c]);
    mjtNum Jpull[6], z[6];
    for (int r = 0; r < 6; ++r) {
      Jpull[r] = 0;
      for (int c = 0; c < n; ++c) Jpull[r] += J[r * n + c] * pull[c];
    }
    mju_cholSolve(z, JJt, Jpull, 6);
    for (int c = 0; c < n; ++c) {
      double proj = 0;
      for (int r = 0; r < 6; ++r) proj += J[r * n + c] * z[r];
      dq[c] += pull[c] - proj;
    }
  }
  for (int c = 0; c < n; ++c) q[c] = std::clamp(q[c] + dq[c], lower_[c], upper_[c]);
  return q;
}

void RobotController::ApplyEeDelta(const mjModel* m, mjData* d, const std::array<double, 3>& dpos, const std::array<double, 3>& drot) const {
  SetJointTargets(d, EeDeltaTargets(m, d, dpos, drot));
}

void RobotController::SetGripper(mjData* d, double closed) const {
  if (gripper_actuator_ < 0) return;
  closed = std::clamp(closed, 0.0, 1.0);
  d->ctrl[gripper_actuator_] = embodiment_.gripper_open + closed * (embodiment_.gripper_closed - embodiment_.gripper_open);
}

double RobotController::GripperClosedFraction(const mjData* d) const {
  if (gripper_qpos_ < 0) return 0.0;
  const double span = embodiment_.gripper_closed - embodiment_.gripper_open;
  return std::clamp((d->qpos[gripper_qpos_] - embodiment_.gripper_open) / span, 0.0, 1.0);
}

std::vector<double> RobotController::ApplyAction(const mjModel* m, mjData* d, const std::vector<double>& action) const {
  std::vector<double> a(action.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::clamp(action[i], -1.0, 1.0);
  const auto& scale = embodiment_.action_scale;
  std::vector<double> targets;
  if (embodiment_.kind == robots::EmbodimentKind::kArm) {
    targets = EeDeltaTargets(m, d, {a[0] * scale.position, a[1] * scale.position, a[2] * scale.position},
                             {a[3] * scale.rotation, a[4] * scale.rotation, a[5] * scale.rotation});
    SetGripper(d, 0.5 * (a[6] + 1.0));
  } else {
    targets = JointTargets(d);
    for (int i = 0; i < num_joints(); ++i) targets[i] += a[i] * scale.joint;
  }
  SetJointTargets(d, targets);
  for (int i = 0; i < num_joints(); ++i) targets[i] = d->ctrl[actuator_ids_[i]];
  return targets;
}

}  // namespace embody::sim
