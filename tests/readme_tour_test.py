#!/usr/bin/env python3
"""Runs the README's tour as written: every `build/bin/...` command of the "A ten-minute tour" and
"Your own robot" sections, in order, in an empty folder, with only the sizes made tiny (episodes,
steps, widths: a value the README gives is replaced, a size it leaves out is added) and the viewer
made headless (a --screenshot under Xvfb). A command that fails, or a README whose tour lost its
commands, fails the test. "Your own robot" runs with robots/my_arm.json, a renamed copy of ur5.

Usage: readme_tour_test.py BIN_DIR REPO_ROOT
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

bin_dir, root = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()


def section(title):
    start = readme.index("## " + title)
    end = readme.find("\n## ", start + 1)
    return readme[start:end if end >= 0 else len(readme)]


def commands(text):
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("build/bin/"):
                yield shlex.split(line)


# Per program: values replaced when the README gives the flag, flags added when it does not.
TINY = {
    "simcollect": {"--episodes": "12", "--steps": "16", "--image-size": "32"},
    "pretrain": {"--steps": "3", "--batch": "4", "--width": "8", "--dim": "16", "--frame-skip": "2", "--rollout": "2", "--probe-episodes": "4"},
    "adapt": {"--steps": "4", "--batch": "4", "--width": "16", "--depth": "1", "--context": "2", "--frame-skip": "2", "--eval-seconds": "0.4",
              "--decoder-steps": "5"},
    "plan": {"--episodes": "1", "--max-steps": "3", "--samples": "16", "--iterations": "1", "--elites": "4", "--oracle": "none"},
    "surprise": {"--pairs": "2", "--steps": "30"},
    "rollout-viewer": {"--width": "800", "--height": "600"},
}


def tiny(argv, n):
    program = os.path.basename(argv[0])
    if program == "simcollect" and len(argv) > 1 and argv[1] == "info":
        return [os.path.join(bin_dir, program)] + argv[1:]
    sizes = dict(TINY.get(program, {}))
    out = [os.path.join(bin_dir, program)]
    args = argv[1:]
    i = 0
    while i < len(args):
        out.append(args[i])
        if args[i] in sizes and i + 1 < len(args):
            out.append(sizes.pop(args[i]))
            i += 1
        i += 1
    for flag, value in sizes.items():
        out += [flag, value]
    if program == "rollout-viewer":
        if "--screenshot" not in out and "--video" not in out:
            out += ["--screenshot", "out/tour_%d.png" % n]
        out = ["xvfb-run", "-a", "-s", "-screen 0 1024x768x24"] + out
    return out


work = tempfile.mkdtemp(prefix="embody_readme_tour_")
try:
    os.makedirs(os.path.join(work, "out"))
    os.makedirs(os.path.join(work, "robots"))
    ur5 = json.load(open(os.path.join(root, "assets", "embodiments", "ur5.json")))
    ur5["name"] = "my_arm"
    ur5["mjcf"] = os.path.join(root, "assets", "ur5_tabletop.xml")
    json.dump(ur5, open(os.path.join(work, "robots", "my_arm.json"), "w"))
    tour = list(commands(section("A ten-minute tour"))) + list(commands(section("Your own robot")))
    programs = {os.path.basename(c[0]) for c in tour}
    missing = {"simcollect", "pretrain", "adapt", "rollout-viewer", "plan", "surprise"} - programs
    if missing:
        sys.exit("readme_tour_test: FAIL: the tour has no %s command" % ", ".join(sorted(missing)))
    env = dict(os.environ, LP_NUM_THREADS="0")
    for n, argv in enumerate(tour):
        cmd = tiny(argv, n)
        r = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit("readme_tour_test: FAIL: %s\n  (run as %s)\n%s" % (" ".join(argv), " ".join(cmd), r.stdout[-3000:]))
        print("ok  " + " ".join(argv))
    for made in ["data/franka.h5", "models/encoder.pt", "models/franka/model.pt", "out/plan_franka_reach.json", "out/clips.h5",
                 "data/my_arm.h5", "models/my_arm/model.pt", "out/plan_my_arm_reach.json"]:
        if not os.path.exists(os.path.join(work, made)):
            sys.exit("readme_tour_test: FAIL: the tour did not make " + made)
    print("readme_tour_test: %d commands ran" % len(tour))
finally:
    shutil.rmtree(work, ignore_errors=True)
