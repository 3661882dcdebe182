#!/usr/bin/env bash
# Run HERE, where PyPI is reachable, before a call on a lent GPU machine: downloads the wheels
# that studies/device-run.sh installs there without network. That machine has Python and
# PyTorch (torch, torchvision and their CUDA libraries) but not DVC and perhaps not the rest of
# requirements.txt. The folder holds requirements.txt minus torch/torchvision with every
# dependency (the whole closure, resolved for the target's Python and platform), and
# requirements-device.txt, what `pip install --no-index --find-links WHEELS -r` installs there.
#
#   bash studies/device-wheels.sh [DEST]        # DEST: default ../device-wheels (outside the repo)
#
# PYVER: the target's Python (default 3.12, the lent H200's of docs/results.md §1d: check with
# `python3 --version` there; 3.11 for a trial on a 3.11 machine). PLATFORM_GLIBC: its glibc's
# newest manylinux tag (default 2_28: PyTorch's own wheels need it, so any machine running them
# has it). HAVE: a `pip freeze` of the machine (one cheap call there): what it lists is left out,
# like PyTorch. Measured for Python 3.12: 241 MB in 148 wheels for everything (llvmlite 54 MB,
# scipy 34, onnxruntime 23, numpy 17, pandas 11, ...; DVC with DVCLive and their dependencies
# about 27 MB); 59 MB in 130 with HAVE listing numpy, scipy, numba, llvmlite, scikit-learn,
# pandas, matplotlib, pillow, onnx and onnxruntime. A call to the lent machine carries at most
# 64 MiB, so give HAVE when the machine has that stack, or carry the folder over several calls. A DEST inside the repository must be git-ignored
# (`.git/info/exclude`): queued experiments copy untracked files.
set -euo pipefail
DEST=${1:-../device-wheels}
PYVER=${PYVER:-3.12}
GLIBC=${PLATFORM_GLIBC:-2_28}
PYTHON=${PYTHON:-python3}
HAVE=${HAVE:-}

mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

platforms=()
for minor in $(seq "${GLIBC#2_}" -1 17); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64)   # pip expands it to manylinux2010 and manylinux1
target=("${platforms[@]}" --python-version "$PYVER" --implementation cp --only-binary=:all:)


# Pure-Python packages that PyPI has as source only (hydra-core, a DVC dependency, pins
# antlr4-python3-runtime 4.9.*): built here once into a wheel, which installs anywhere.
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$DEST" antlr4-python3-runtime==4.9.3

# The closure for the target, without installing anything: torchmetrics pulls torch in, which
# the machine has: resolved, then left out with what only it needs (triton, CUDA libraries).
"$PYTHON" -m pip install --quiet --dry-run --ignore-installed --target "$tmp/none" \
  --report "$tmp/report.json" --find-links "$DEST" "${target[@]}" -r <(grep -v -E '^torch(vision)?==' requirements.txt)
"$PYTHON" - "$tmp/report.json" "$PYVER" "$HAVE" requirements.txt "$DEST/requirements-device.txt" \
  > "$tmp/pins.txt" <<'EOF'
"""name==version of every package the requirements reach without passing through PyTorch or
what the machine has (HAVE); requirements.txt less those, as what device-run.sh installs."""
import json
import sys

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:   # pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

report, pyver, have, requirements, device_requirements = sys.argv[1:]
report = json.load(open(report))
MACHINE_HAS = {"torch", "torchvision"}   # and what only they need (triton, nvidia-*, sympy, ...)
if have:   # a `pip freeze` of the machine: name==version, name @ URL, comments
    MACHINE_HAS |= {canonicalize_name(line.split("==")[0].split(" @ ")[0].strip())
                    for line in open(have) if line.strip() and not line.startswith(("#", "-"))}
env = {"python_version": pyver, "python_full_version": pyver + ".0", "os_name": "posix",
       "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
found = {canonicalize_name(i["metadata"]["name"]): i for i in report["install"]}
todo = [(name, set(i.get("requested_extras") or [])) for name, i in found.items()
        if i.get("requested") and name not in MACHINE_HAS]
keep: dict[str, set[str]] = {}
while todo:
    name, extras = todo.pop()
    if name in keep and extras <= keep[name]:
        continue
    keep.setdefault(name, set()).update(extras)
    for line in found[name]["metadata"].get("requires_dist") or []:
        req = Requirement(line)
        dep = canonicalize_name(req.name)
        wanted = not req.marker or any(req.marker.evaluate({**env, "extra": extra})
                                       for extra in {"", *keep[name]})
        if wanted and dep in found and dep not in MACHINE_HAS:
            todo.append((dep, set(req.extras)))
for name in sorted(keep):
    print(f"{name}=={found[name]['metadata']['version']}")
with open(requirements) as lines, open(device_requirements, "w") as out:
    for line in lines:
        if line.strip() and not line.startswith("#") and \
                canonicalize_name(Requirement(line).name) not in MACHINE_HAS:
            out.write(line)
EOF
"$PYTHON" -m pip download --quiet --no-deps --dest "$DEST" --find-links "$DEST" "${target[@]}" \
  -r "$tmp/pins.txt"
echo "device-wheels: $(wc -l < "$tmp/pins.txt") packages for Python $PYVER in $DEST ($(du -sh "$DEST" | cut -f1))"
