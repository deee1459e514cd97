#include "sim/world.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <regex>

namespace embody::sim {
namespace {

constexpr int kErrorSize = 2048;

// MuJoCo's default warning handler prints to stdout and appends to MUJOCO_LOG.TXT in the working
// directory. World surfaces warnings itself (CheckStable), so the handler only stays quiet.
void QuietWarning(const char*) {}

void InstallQuietWarningHandler() {
  static std::once_flag once;
  std::call_once(once, [] { mju_user_warning = QuietWarning; });
}

// "FILE:LINE: message" when MuJoCo's message names a line, else "FILE: message".
std::string FormatLoadError(const std::string& file, const char* error) {
  std::string message = error;
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  for (auto& c : message) {
    if (c == '\n') c = ' ';
  }
  std::smatch match;
  static const std::regex kLine(R"((?:line|Line number)\s*[=:]?\s*(\d+))");
  if (std::regex_search(message, match, kLine)) {
    return file + ":" + match[1].str() + ": " + message;
  }
  return file + ": " + message;
}

MjModelPtr LoadWithVfs(const std::string& vfs_name, const std::string& xml, const std::string& name) {
  char error[kErrorSize] = "";
  mjModel* m = nullptr;
#if mjVERSION_HEADER >= 300
  mjVFS vfs;
  mj_defaultVFS(&vfs);
  mj_addBufferVFS(&vfs, vfs_name.c_str(), xml.data(), static_cast<int>(xml.size()));
  m = mj_loadXML(vfs_name.c_str(), &vfs, error, kErrorSize);
  mj_deleteVFS(&vfs);
#else
  auto vfs = std::make_unique<mjVFS>();
  mj_defaultVFS(vfs.get());
  if (mj_makeEmptyFileVFS(vfs.get(), vfs_name.c_str(), static_cast<int>(xml.size())) != 0) {
    throw SimError(name + ": cannot place MJCF text in MuJoCo's virtual file system");
  }
  const int index = mj_findFileVFS(vfs.get(), vfs_name.c_str());
  std::memcpy(vfs->filedata[index], xml.data(), xml.size());
  m = mj_loadXML(vfs_name.c_str(), vfs.get(), error, kErrorSize);
  mj_deleteVFS(vfs.get());
#endif
  if (m == nullptr) throw SimError(FormatLoadError(name, error));
  return MjModelPtr(m);
}

bool AllFinite(const mjtNum* v, int n) {
  for (int i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
  }
  return true;
}

// The state's parts in order: (pointer into mjData, length).
template <typename Data>
auto StateParts(const mjModel* m, Data* d) {
  struct Part {
    decltype(&d->qpos[0]) ptr;
    int size;
  };
  return std::vector<Part>{
      {d->qpos, m->nq},
      {d->qvel, m->nv},
      {d->act, m->na},
      {d->ctrl, m->nu},
      {d->qacc_warmstart, m->nv},
      {d->qfrc_applied, m->nv},
      {d->xfrc_applied, 6 * m->nbody},
      {d->mocap_pos, 3 * m->nmocap},
      {d->mocap_quat, 4 * m->nmocap},
  };
}

}  // namespace

MjModelPtr LoadModelFile(const std::filesystem::path& path) {
  InstallQuietWarningHandler();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw SimError(path.string() + ": no such MJCF file");
  }
  char error[kErrorSize] = "";
  mjModel* m = mj_loadXML(path.c_str(), nullptr, error, kErrorSize);
  if (m == nullptr) throw SimError(FormatLoadError(path.string(), error));
  return MjModelPtr(m);
}

MjModelPtr LoadModelString(const std::string& xml, const std::string& name) {
  InstallQuietWarningHandler();
  return LoadWithVfs("embody_inline_model.xml", xml, name);
}

int RequireId(const mjModel* m, mjtObj type, const std::string& name) {
  const int id = mj_name2id(m, type, name.c_str());
  if (id < 0) {
    const char* type_name = mju_type2Str(type);
    const char* model_name = m->nnames > 0 ? m->names : "";
    throw SimError(std::string("no ") + (type_name ? type_name : "element") + " named \"" + name + "\" in model \"" + model_name + "\"");
  }
  return id;
}

World::World(MjModelPtr model) : model_(std::move(model)), warnings_seen_(mjNWARNING, 0) {
  if (!model_) throw SimError("World needs a model");
  data_.reset(mj_makeData(model_.get()));
  if (!data_) throw SimError("mj_makeData failed (out of memory?)");
  Forward();
}

World World::Clone() const {
  World copy(MjModelPtr(mj_copyModel(nullptr, model_.get())));
  mj_copyData(copy.data_.get(), model_.get(), data_.get());
  copy.compensated_dofs_ = compensated_dofs_;
  copy.warnings_seen_ = warnings_seen_;
  return copy;
}

void World::Reset() {
  mj_resetData(model_.get(), data_.get());
  std::fill(warnings_seen_.begin(), warnings_seen_.end(), 0);
  Forward();
}

void World::Forward() { mj_forward(model_.get(), data_.get()); }

void World::Step(int n) {
  const mjModel* m = model_.get();
  mjData* d = data_.get();
  for (int i = 0; i < n; ++i) {
    mj_step1(m, d);
    // qfrc_bias is fresh after mj_step1: cancel gravity and Coriolis on the compensated dofs.
    for (int dof : compensated_dofs_) d->qfrc_applied[dof] = d->qfrc_bias[dof];
    mj_step2(m, d);
  }
  // mj_step leaves positions, sites and cameras computed for the state before its last integration;
  // one mj_forward makes everything derived (frames rendered now, recorded poses) match the state.
  Forward();
  CheckStable();
}

void World::CheckStable() {
  const mjData* d = data_.get();
  std::string problems;
  for (int i = 0; i < mjNWARNING; ++i) {
    if (d->warning[i].number != warnings_seen_[i]) {
      warnings_seen_[i] = d->warning[i].number;
      problems += std::string(problems.empty() ? "" : "; ") + mju_warningText(i, d->warning[i].lastinfo);
    }
  }
  if (problems.empty() && !(AllFinite(d->qpos, model_->nq) && AllFinite(d->qvel, model_->nv))) {
    problems = "non-finite qpos or qvel";
  }
  if (!problems.empty()) {
    throw UnstableError("simulation unstable at t=" + std::to_string(d->time) + ": " + problems);
  }
}

int World::state_size() const {
  int size = 1;
  for (const auto& part : StateParts(model_.get(), data_.get())) size += part.size;
  return size;
}

void World::GetState(double* out) const {
  const mjData* d = data_.get();
  *out++ = d->time;
  for (const auto& part : StateParts(model_.get(), d)) {
    std::copy(part.ptr, part.ptr + part.size, out);
    out += part.size;
  }
}

std::vector<double> World::GetState() const {
  std::vector<double> state(state_size());
  GetState(state.data());
  return state;
}

void World::SetState(const double* state, int size) {
  if (size != state_size()) {
    throw SimError("state has " + std::to_string(size) + " values; this model's state has " + std::to_string(state_size()));
  }
  // mj_forward normalizes quaternions in qpos and overwrites qacc_warmstart; copying the state in
  // again afterwards keeps it bit-identical to the saved one, so the next step replays exactly.
  CopyIn(state);
  Forward();
  CopyIn(state);
}

void World::CopyIn(const double* state) {
  mjData* d = data_.get();
  d->time = *state++;
  for (const auto& part : StateParts(model_.get(), d)) {
    std::copy(state, state + part.size, part.ptr);
    state += part.size;
  }
}

}  // namespace embody::sim
