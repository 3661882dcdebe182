#!/usr/bin/env bash
# One call on a lent GPU machine that has Python and PyTorch but neither DVC nor the rest of
# requirements.txt, and no network (docs/results.md §1d): install the carried wheels, make a Git
# repository of this working copy, unpack the carried CIFAR-10 JPEGs, time the training loop
# (`python -m benchmarks train` on CUDA), queue the study as DVC experiments
# (studies/device-h200.sh by default) and run them with `dvc queue start` until they end or the
# budget is spent, then leave the results in OUT.
#
#   bash studies/device-wheels.sh .whl            # here first: the wheels (PYVER, default 3.12)
#   bash studies/device-run.sh WHEELS CIFAR_TAR OUT [BUDGET_S]   # there, from the repository root
#
# WHEELS: studies/device-wheels.sh's folder (inside the working copy only git-ignored, e.g. in
# .git/info/exclude). CIFAR_TAR: a .tar.gz holding cifar10-jpeg/. BUDGET_S: wall seconds for the
# whole call (default 560); the queue is stopped 40 s before, to collect. Environment: STUDY (the
# study script, default studies/device-h200.sh; it reads JOBS and SEEDS), COMPARE (globs of
# experiment names for results.md, default the h200 study's base runs).
#
# No `git` program is needed: the repository is made with dulwich (a DVC dependency, among the
# wheels), and DVC's experiments run without one (tried: `dvc exp run --queue` and `dvc queue
# start` with no git on PATH).
#
# OUT gets: machine.txt, install.log, bench-train.txt, queue.log, queue-status.txt (each run's
# state), exp-show.json (`dvc exp show --json -A`: every finished run's params and metrics, the
# input of `python -m pipeline.experiments --json OUT/exp-show.json --match ...`), results.md
# (those tables), exps/<name>/data/{metrics,live,report} (each finished run's files, from its
# experiment commit), logs/<name>.log (`dvc queue logs`), and unfinished-live.tgz (the DVCLive
# curves of the runs still going when the budget ran out).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bash studies/device-run.sh WHEELS CIFAR_TAR OUT [BUDGET_S]" >&2; exit 2; }
WHEELS=$(cd "$1" && pwd)
TAR=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
mkdir -p "$3"
OUT=$(cd "$3" && pwd)
BUDGET=${4:-560}
STUDY=${STUDY:-studies/device-h200.sh}
COMPARE=${COMPARE:-h200-paper-s* h200-grid-mean-a0.99-s*}
start=$(date +%s)
WORK=$(mktemp -d)   # venv, repository, data: the machine is given back afterwards
export DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1

# 1. The wheels, into a venv that sees the machine's own PyTorch (--system-site-packages): pip
#    installs what the machine lacks, from the folder only (--no-index). --without-pip needs no
#    ensurepip; the machine's pip, found through the system site, installs into the venv.
python3 -m venv --system-site-packages --without-pip "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --no-index --find-links "$WHEELS" \
  -r "$WHEELS/requirements-device.txt" > "$OUT/install.log" 2>&1 \
  || { tail -20 "$OUT/install.log" >&2; exit 1; }
export PATH=$WORK/venv/bin:$PATH VIRTUAL_ENV=$WORK/venv
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "cores: $(nproc)"; python --version; dvc --version; git --version || true
  python -c "import torch, numba, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__, 'numpy', numpy.__version__)"
} > "$OUT/machine.txt" 2>&1

# 2. The repository: a copy of the working tree (not the wheels, the data or OUT), committed as
#    it is (experiments are commits on top of it); .gitignore keeps data/ out, as in a clone.
excludes=(--exclude=./.git --exclude=./.dvc/tmp --exclude=./.dvc/cache)
for path in "$WHEELS" "$TAR" "$OUT"; do
  case "$path" in "$PWD"/*) excludes+=("--exclude=./${path#"$PWD"/}") ;; esac
done
REPO=$WORK/repo
mkdir -p "$REPO"
tar -c "${excludes[@]}" -f - . | tar -x -C "$REPO"
cd "$REPO"
python - <<'EOF'
from dulwich import porcelain

repo = porcelain.init(".")
porcelain.add(repo)   # every file .gitignore does not exclude, as `git add -A`
who = b"device study <study@localhost>"
porcelain.commit(repo, message=b"working copy for the device study", author=who, committer=who)
EOF

# 3. The data, outside the repository (queued runs see it through an absolute data.root).
mkdir -p "$WORK/data" && tar -xzf "$TAR" -C "$WORK/data"

# 4. The training loop's speed on this GPU (docs/scaling.md), at most 70 s.
timeout 70 python -m benchmarks train --device cuda --amp --n 2048 --repeat 2 \
  > "$OUT/bench-train.txt" 2>&1 || echo "bench: exit $?" >> "$OUT/bench-train.txt"

# 5. The study: queued and started by its script, watched until it ends or the budget is spent.
bash "$STUDY" "$WORK/data/cifar10-jpeg" > "$OUT/queue.log" 2>&1 || { cat "$OUT/queue.log" >&2; exit 1; }
deadline=$(( start + BUDGET - 40 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  dvc queue status > "$OUT/queue-status.txt" 2>&1 || true
  grep -q -E ' (Queued|Running)$' "$OUT/queue-status.txt" || break
  sleep 10
done

# 6. Results; the unfinished runs' curves first (their temporary copies go with the kill).
find .dvc/tmp/exps -type d -path '*/data/live' > "$WORK/live.txt" 2>/dev/null || true
if [ -s "$WORK/live.txt" ]; then tar -czf "$OUT/unfinished-live.tgz" -T "$WORK/live.txt" || true; fi
dvc queue stop --kill > /dev/null 2>&1 || true
dvc queue status > "$OUT/queue-status.txt" 2>&1 || true
dvc exp show --json -A > "$OUT/exp-show.json" 2> "$OUT/exp-show.err" || true
mkdir -p "$OUT/logs"
for name in $(awk '$NF ~ /^(Queued|Running|Success|Failed)$/ {print $2}' "$OUT/queue-status.txt" | sort -u); do
  dvc queue logs "$name" > "$OUT/logs/$name.log" 2>&1 || true
done
python - "$OUT/exps" <<'EOF'
"""Each experiment commit's data/metrics, data/live and data/report under OUT/exps/<name>/."""
import sys
from pathlib import Path

from dulwich.object_store import iter_tree_contents
from dulwich.repo import Repo

repo, out = Repo("."), Path(sys.argv[1])
for ref in repo.refs.keys(base=b"refs/exps"):
    name = ref.rsplit(b"/", 1)[-1].decode()
    tree = repo[repo.refs[b"refs/exps/" + ref]].tree
    for entry in iter_tree_contents(repo.object_store, tree):
        path = entry.path.decode()
        if path.startswith(("data/metrics/", "data/live/", "data/report/")):
            target = out / name / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(repo[entry.sha].data)
EOF
read -r -a compare <<< "$COMPARE"   # no pathname expansion of the globs
for match in "${compare[@]}"; do
  echo "## $match"
  python -m pipeline.experiments --json "$OUT/exp-show.json" --match "$match" || true
  python -m pipeline.experiments --json "$OUT/exp-show.json" --match "$match" --baseline kd || true
done > "$OUT/results.md" 2>&1
echo "device-run: $(( $(date +%s) - start )) s; $(grep -c ' Success$' "$OUT/queue-status.txt" || true) runs finished"
