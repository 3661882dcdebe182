#!/usr/bin/env bash
# The studies of docs/results.md §1d as queued DVC experiments, for a lent GPU machine (one H200,
# 16 CPU cores; studies/device-run.sh calls this there): the user's setting (the paper's models,
# 20 epochs, seeds 0-2: h200-paper-s<seed>) first, then §1c's 2-core grid on the GPU (alpha x KL
# reduction, and teacher 2's filtrations: h200-grid-<variant>-s<seed>). The queue runs them in
# the order queued, JOBS at a time. DVC's run cache gives back prepare and topology when a
# finished run had the same inputs; the training stages (DVCLive folders in Git) run every time.
#
#   bash studies/device-h200.sh DATA         # DATA: the unpacked cifar10-jpeg folder
#
# Environment: JOBS (parallel runs, default 6: twelve time-sliced on one GPU ran 2.5-5x slower
# each), SEEDS (default "0 1 2"), START=0 to queue only (then `dvc queue start -j 6`). DATA is
# passed as an absolute data.root: queued runs execute in a temporary copy of the repository. A
# name already taken (this commit's experiments, the queue) stops the script before it queues.
#
# Compare (python -m pipeline.experiments; on a saved `dvc exp show --json` add --json FILE):
#   python -m pipeline.experiments --match 'h200-paper-s*'                       # mean ± std per model
#   python -m pipeline.experiments --match 'h200-paper-s*' --baseline kd         # tgd - kd, sp - kd per seed
#   python -m pipeline.experiments --match 'h200-paper-s*' --baseline scratch
#   python -m pipeline.experiments --match 'h200-grid-mean-a0.9-s*' --baseline-match 'h200-grid-mean-a0.99-s*' --baseline kd
#   python -m pipeline.experiments --match 'h200-grid-bm-a0.7-s*' --baseline-match 'h200-grid-bm-a0.99-s*' --baseline kd
#   python -m pipeline.experiments --match 'h200-grid-cubical-s*' --baseline-match 'h200-grid-mean-a0.99-s*' --baseline tgd
set -euo pipefail
DATA=${1:?usage: bash studies/device-h200.sh DATA}
[ -d "$DATA" ] || { echo "device-h200: no data folder $DATA" >&2; exit 1; }
DATA=$(cd "$DATA" && pwd)
JOBS=${JOBS:-6}
SEEDS=${SEEDS:-0 1 2}

common=(
  -S data.name=imagefolder -S "data.root=$DATA"
  -S topology.n_jobs=6 -S topology.image.resolution=50   # the TGD recipe's 50 x 50 PIs; stores share 16 cores
  -S train.device=cuda                 # amp off: bf16 autocast measured 1.1-1.3x slower at these sizes (docs/scaling.md)
  -S distill.teacher_cache=false       # on a GPU the frozen teachers' forward passes cost little
  -S evaluate.latency_repeats=5        # CPU latencies on a machine this busy are only indicative
)
paper=(-S models.teacher_image=wrn16_3 -S models.teacher_topology=wrn16_3 -S models.student=wrn16_1
       -S train.epochs=20)
grid=(-S models.teacher_image=wrn16_1 -S models.teacher_topology=wrn10_1 -S models.student=wrn10_1
      -S train.epochs=3)
names=() runs=()
queue() {   # queue NAME OVERRIDES...: one experiment, queued below once every name is checked
  names+=("$1")
  runs+=("$(printf '%q ' dvc exp run --queue -n "$1" "${common[@]}" "${@:2}")")
}

for s in $SEEDS; do   # the user's setting: the paper's models, 20 epochs
  queue "h200-paper-s$s" "${paper[@]}" -S train.seed="$s" -S 'distill.methods=[kd,sp,tgd]'
done
for s in $SEEDS; do   # §1c's grid: the authors' alpha 0.99 and mean KL
  queue "h200-grid-mean-a0.99-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[kd,sp,tgd]'
done
for s in $SEEDS; do   # batchmean KL, kd with it too: h200-grid-bm-* pair with this kd
  queue "h200-grid-bm-a0.99-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[kd,tgd]' \
    -S distill.kd.kl_reduction=batchmean -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do
  queue "h200-grid-mean-a0.9-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.9
done
for s in $SEEDS; do
  queue "h200-grid-bm-a0.9-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.9 -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do
  queue "h200-grid-mean-a0.7-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.7
done
for s in $SEEDS; do   # presets/balanced-teachers.yaml
  queue "h200-grid-bm-a0.7-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.7 -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do   # teacher 2 on cubical PIs
  queue "h200-grid-cubical-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S 'topology.image.filtrations=[cubical]'
done
for s in $SEEDS; do   # teacher 2 on stacked sequence + cubical PIs
  queue "h200-grid-seq-cubical-s$s" "${grid[@]}" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S 'topology.image.filtrations=[sequence,cubical]'
done

# DVC queues a name twice without a word and keeps one of the two runs (both report Success):
# refuse any name that this commit's experiments or the queue already hold, or that repeats.
taken=$( { dvc exp ls --name-only; dvc queue status | awk '$NF ~ /^(Queued|Running|Success|Failed)$/ {print $2}'; } 2>/dev/null || true)
clash=$(printf '%s\n' "${names[@]}" | sort | uniq -d; printf '%s\n' "${names[@]}" | grep -x -F -f <(printf '%s\n' "$taken" | grep .) || true)
if [ -n "$clash" ]; then
  echo "device-h200: experiment names taken already (dvc exp remove NAME / dvc queue remove NAME):" $clash >&2
  exit 1
fi
for run in "${runs[@]}"; do eval "$run"; done

if [ "${START:-1}" = 0 ]; then
  echo "device-h200: queued ${#names[@]} experiments; start with: dvc queue start -j $JOBS"
else
  dvc queue start -j "$JOBS"
  echo "device-h200: queued ${#names[@]} experiments, started $JOBS workers; follow with: dvc queue status"
fi
