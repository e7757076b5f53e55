#!/usr/bin/env bash
# Does the built wheel work away from the checkout?  Builds it from a clean copy of the
# source, installs it into a fresh virtual environment in a temporary folder, and runs
# the command line there from another temporary folder, so nothing can come from the
# checkout.  The dependencies are not downloaded: a .pth file in the fresh environment
# points at the project's .venv site-packages (a path line does not run the editable
# install's own .pth files there, so the checkout stays off the path; checked below).
#
#   bash tests/wheel_check.sh [PYTHON]     PYTHON: the project's .venv python by default
#
# `make test` runs it.  Exit status 0 when every step passes; otherwise non-zero after a
# "wheel check FAILED: ..." line naming the step, with that step's output.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-$repo/.venv/bin/python}
py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")   # absolute; the symlink is kept

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gradlab-wheel-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src=$tmp/src dist=$tmp/dist venv=$tmp/venv work=$tmp/work log=$tmp/log
mkdir -p "$dist" "$work"

fail() {
    echo "wheel check FAILED: $*" >&2
    exit 1
}

# run WHAT CMD...: CMD in the work folder, its output kept in $log; fails naming WHAT.
run() {
    local what=$1
    shift
    echo "wheel check: $what"
    if ! (cd "$work" && "$@") >"$log" 2>&1; then
        cat "$log" >&2
        fail "$what"
    fi
}

# expect_file PATH...: each must exist under the work folder and not be empty.
expect_file() {
    local f
    for f in "$@"; do
        [[ -s $work/$f ]] || fail "$f was not written"
    done
}

case $tmp/ in
    "$repo"/*) fail "the temporary folder $tmp is inside the checkout; set TMPDIR elsewhere" ;;
esac
[[ -x $py ]] || fail "no Python at $py (run make first)"

# --- build the wheel from a copy of what git tracks or would track (no stale build/)
echo "wheel check: building the wheel"
"$py" - "$repo" "$src" <<'EOF' || fail "copying the source"
import shutil, subprocess, sys
from pathlib import Path

repo, dst = Path(sys.argv[1]), Path(sys.argv[2])
try:
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True).stdout
except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy all but builds
    shutil.copytree(repo, dst, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "*.pyc"))
else:
    for name in out.decode().split("\0"):
        if name and (repo / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dst / name)
EOF
if ! "$py" -m pip wheel --no-deps --no-build-isolation --quiet -w "$dist" "$src" >"$log" 2>&1; then
    cat "$log" >&2
    fail "building the wheel (pip wheel; the test extra brings setuptools and wheel)"
fi
whl=("$dist"/*.whl)
[[ ${#whl[@]} == 1 && -f ${whl[0]} ]] || fail "pip wheel did not write exactly one wheel"

# Every module of core/ and gui/ and every bundled file must be in it.
echo "wheel check: the wheel's contents"
"$py" - "$src" "${whl[0]}" <<'EOF' || fail "the wheel's contents (see pyproject.toml's packages)"
import sys, zipfile
from pathlib import Path

src, whl = Path(sys.argv[1]), sys.argv[2]
names = set(zipfile.ZipFile(whl).namelist())
want = {p.relative_to(src).as_posix() for top in ("core", "gui") for p in (src / top).rglob("*.py")}
want |= {"main.py"}
want |= {"gradlab_resources/" + p.relative_to(src / "resources").as_posix()
         for p in (src / "resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
missing = sorted(want - names)
for name in missing:
    print(f"  not in the wheel: {name}", file=sys.stderr)
sys.exit(1 if missing else 0)
EOF

# --- a fresh environment outside the checkout, holding only the wheel
echo "wheel check: installing it into a fresh environment"
"$py" -m venv --without-pip "$venv" || fail "creating the fresh environment"
if ! "$py" -m pip --python "$venv/bin/python" install --no-deps --no-index --quiet "${whl[0]}" \
        >"$log" 2>&1; then
    cat "$log" >&2
    fail "installing the wheel"
fi
# The dependencies from .venv, written after the install so pip never sees .venv's
# editable install of this project.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$py" -c 'import sysconfig; print(*sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}), sep="\n")' \
    >"$site/gradlab-wheel-check-deps.pth"

export PATH=$venv/bin:$PATH QT_QPA_PLATFORM=offscreen
unset PYTHONPATH PYTHONHOME

run "the lab is imported from the fresh environment, not the checkout" \
    "$venv/bin/python" - "$venv" "$repo" "$site/gradlab-wheel-check-deps.pth" <<'EOF'
import sys
from pathlib import Path

venv, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
deps = {Path(line).resolve() for line in Path(sys.argv[3]).read_text().splitlines() if line}
import core, core.resources, gradlab_resources, main

bad = False
for what, where in [("core", core.__file__), ("main", main.__file__),
                    ("gradlab_resources", gradlab_resources.__file__),
                    ("core.resources.files()", str(core.resources.files()))]:
    if not Path(where).resolve().is_relative_to(venv):
        print(f"{what} comes from {where}, not from {venv}", file=sys.stderr)
        bad = True
for entry in sys.path:
    path = Path(entry or ".").resolve()
    if path.is_relative_to(repo) and path not in deps:
        print(f"the checkout is on sys.path: {entry}", file=sys.stderr)
        bad = True
sys.exit(bad)
EOF

# --- the command line, from a folder outside the checkout
run "gradlab presets" gradlab presets
n_lessons=$(find "$src/resources/lessons" -name '*.json' | wc -l)
grep -q '^vanishing_tanh' "$log" || { cat "$log" >&2; fail "gradlab presets does not list vanishing_tanh"; }
[[ $(grep -c . "$log") -ge $n_lessons ]] || {
    cat "$log" >&2
    fail "gradlab presets lists fewer than the $n_lessons lessons"
}

run "gradlab export --preset vanishing_tanh" \
    gradlab export --preset vanishing_tanh --out export --formats csv
expect_file export/gradients.csv export/experiment.json

# A bundled data set (the Nile series) read by the task "dataset".
cat >"$work/nile.json" <<'EOF'
{
  "format": "gradlab-experiment",
  "version": 1,
  "model": {"input_size": 1, "output_size": 1, "pattern": "many_to_many",
            "layers": [{"cell": "lstm", "hidden_size": 8}]},
  "task": {"name": "dataset", "series": "nile", "seq_len": 10, "batch_size": 4}
}
EOF
run "gradlab analyze on the bundled nile data set" gradlab analyze nile.json --out analyze
expect_file analyze/trace.npz analyze/summary.json

# The user's own data: an experiment without a task section, on .npy arrays, through
# the command line and through the Python API; and the Lab on a bundled lesson.
run "writing an experiment without a task and its .npy arrays" "$venv/bin/python" -c '
import json
import numpy as np
json.dump({"format": "gradlab-experiment", "version": 1,
           "model": {"input_size": 3, "output_size": 2,
                     "layers": [{"cell": "gru", "hidden_size": 4}]}}, open("e.json", "w"))
rng = np.random.default_rng(0)
np.save("x.npy", rng.normal(size=(7, 5, 3)))
np.save("y.npy", rng.normal(size=(7, 5, 2)))
'
run "gradlab analyze on the user's own arrays" \
    gradlab analyze e.json --input x.npy --target y.npy --out D3
expect_file D3/trace.npz
run "core.trace on the user's own arrays" "$venv/bin/python" -c '
import numpy as np
from core import load_experiment, trace
exp = load_experiment("e.json")
x, y = np.load("x.npy"), np.load("y.npy")
r = trace(exp, x, y)
assert r["gradnorm.l0"].shape == (7,), r["gradnorm.l0"].shape
'
run "the Lab probes a bundled lesson" "$venv/bin/python" -c '
from core.lab import Lab
lab = Lab.from_preset("vanishing_tanh")
lab.probe()
'

run "the Edge-of-chaos lesson's sweep and the forget-gate lesson's Compare step" \
    "$venv/bin/python" -c '
from core.lessons import lesson_pair, lesson_sweep
from core.sweep.phase import open_sweep
ds = open_sweep(lesson_sweep("edge_of_chaos"))
assert ds.sizes["seed"] == 3, ds.sizes
assert lesson_pair("forget_gate").path == "init.forget_bias"
'

# --- more commands go here, in the same form:
#   run "what it checks" gradlab COMMAND ARGS...     (cwd: $work; output in $log)
#   expect_file FILES...                             (paths under $work)

echo "wheel check: passed"
