#!/usr/bin/env bash
# Installs the Debian 12 packages Embody needs, only those that are missing.
# Idempotent: when everything is present it finishes in well under a second.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config clang-format
  libmujoco-dev libqhull-dev
  libtorch-dev libopenblas0-openmp libgloo-dev
  libimgui-dev libstb-dev libglfw3-dev
  libegl-dev libgl-dev libegl-mesa0 libgl1-mesa-dri libgles-dev
  xvfb xauth ffmpeg
  libhdf5-dev
  libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev
  python3-h5py python3-numpy python3-torch python3-pil
  slurmctld slurmd slurm-client munge
)

missing=()
for p in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo_cmd=(sudo -n)
else
  echo "install-deps: error: missing packages (${missing[*]}) and neither root nor passwordless sudo;" \
       "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
