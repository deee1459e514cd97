#!/usr/bin/env python3
"""Checks the dependency rules of docs/ARCHITECTURE.md against every #include in the tree.

- The folders depend one way: robots <- sim <- collect <- adapt <- viewer (a folder includes its own
  headers and those of the folders before it, never one after it).
- adapt/ is in rooms, in order: core <- encoder <- world_model <- plan <- surprise. A room includes
  its own headers and those of the rooms before it; adapt/tools/ (the programs) may include any.
- Torch stays inside adapt/: the viewer includes only adapt/ headers that reach no torch header,
  however indirectly.
Usage: check_rooms.py REPO_ROOT. Prints every violation and exits 1 if there is one.
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
FOLDERS = ["robots", "sim", "collect", "adapt", "viewer"]
ROOMS = ["core", "encoder", "world_model", "plan", "surprise"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def sources():
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in names:
                if name.endswith((".h", ".cc")):
                    path = os.path.join(dirpath, name)
                    yield os.path.relpath(path, root), open(path, encoding="utf-8").read()


files = dict(sources())
includes = {path: INCLUDE.findall(text) for path, text in files.items()}


def reaches_torch(header, seen=None):
    seen = set() if seen is None else seen
    if header in seen or header not in includes:
        return False
    seen.add(header)
    for inc in includes[header]:
        if inc.startswith("torch/") or inc.startswith("c10/") or inc.startswith("ATen/"):
            return True
        if inc in includes and reaches_torch(inc, seen):
            return True
    return False


problems = []
for path, incs in sorted(includes.items()):
    parts = path.split(os.sep)
    folder = parts[0]
    for inc in incs:
        target = inc.split("/")[0]
        if target not in FOLDERS or inc not in files:
            continue  # system, third-party or a path outside the checked folders
        if FOLDERS.index(target) > FOLDERS.index(folder):
            problems.append(f"{path}: includes {inc}, but {folder}/ comes before {target}/ (robots <- sim <- collect <- adapt <- viewer)")
        if folder == "adapt" and target == "adapt" and parts[1] in ROOMS:
            room, other = parts[1], inc.split("/")[1]
            if other == "tools" or (other in ROOMS and ROOMS.index(other) > ROOMS.index(room)):
                problems.append(f"{path}: the {room} room includes {inc} ({other} comes after it: {' <- '.join(ROOMS)})")
        if folder == "viewer" and target == "adapt" and reaches_torch(inc):
            problems.append(f"{path}: includes {inc}, which reaches torch (the viewer uses only adapt/'s torch-free headers)")

# Every source of adapt/ lives in a room or in tools/.
for path in files:
    parts = path.split(os.sep)
    if parts[0] == "adapt" and (len(parts) < 3 or parts[1] not in ROOMS + ["tools"]):
        problems.append(f"{path}: adapt/ sources live in a room ({', '.join(ROOMS)}) or tools/")

for p in problems:
    print("check_rooms: " + p)
print(f"check_rooms: {len(files)} sources, {sum(map(len, includes.values()))} includes, {len(problems)} violations")
sys.exit(1 if problems else 0)
