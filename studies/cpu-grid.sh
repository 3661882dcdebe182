#!/usr/bin/env bash
# docs/results.md §1c as queued DVC experiments, for 2 CPU cores: all 50,000 / 10,000 CIFAR-10
# images, teacher 1 WRN-16-1, teacher 2 WRN-10-1 on the TGD recipe's 50 x 50 PIs, WRN-10-1
# students, 3 epochs of Adam (lr 0.0005, batch 64), one thread per run, seeds 0-2. One experiment
# per seed x variant, named grid-<variant>-s<seed>. The queue runs them in the order queued: the
# base (the authors' alpha 0.99 and mean KL, kd + sp + tgd) for every seed first, then each
# variant over the seeds. A variant distils only the students it changes (distill.methods).
# DVC's run cache gives back the stages whose outputs are all cached (prepare, topology) when a
# finished run had the same inputs; the training stages keep their DVCLive folders in Git
# (cache: false), which turns their run cache off, so every run trains its teachers and scratch
# student again (measured: a repeated run restored prepare and topology, retrained the rest).
#
#   mkdir -p data/raw && tar -xzf cifar10-jpeg.tar.gz -C data/raw
#   bash studies/cpu-grid.sh [DATA]          # DATA: default data/raw/cifar10-jpeg
#
# Environment: JOBS (parallel runs, default 2), SEEDS (default "0 1 2"), START=0 to queue only
# (then `OMP_NUM_THREADS=1 dvc queue start -j 2`). Queued runs execute in a temporary copy of the
# repository holding only what Git or DVC tracks, so DATA is passed as an absolute data.root.
# A name that this commit's experiments or the queue hold already stops the script before it
# queues anything (`dvc exp remove NAME`, `dvc queue remove NAME`). Follow the runs with
# `dvc queue status` and `dvc queue logs grid-mean-a0.99-s0`; `dvc exp show` lists the finished.
#
# Compare (python -m pipeline.experiments; paired by train.seed with --baseline-match):
#   python -m pipeline.experiments --match 'grid-mean-a0.99-s*'                      # mean ± std per model
#   python -m pipeline.experiments --match 'grid-mean-a0.99-s*' --baseline kd        # tgd - kd, sp - kd per seed
#   python -m pipeline.experiments --match 'grid-mean-a0.99-s*' --baseline scratch   # what distillation buys
#   python -m pipeline.experiments --match 'grid-mean-a0.7-s*' --baseline-match 'grid-mean-a0.99-s*' --baseline kd
#   python -m pipeline.experiments --match 'grid-mean-a0.7-s*' --baseline-match 'grid-mean-a0.99-s*' --baseline tgd
#   python -m pipeline.experiments --match 'grid-bm-a0.7-s*' --baseline-match 'grid-bm-a0.99-s*' --baseline kd   # batchmean tgd against batchmean kd
#   python -m pipeline.experiments --match 'grid-cubical-s*' --baseline-match 'grid-mean-a0.99-s*' --baseline tgd --metric ece
set -euo pipefail
DATA=${1:-data/raw/cifar10-jpeg}
[ -d "$DATA" ] || { echo "cpu-grid: no data folder $DATA (unpack cifar10-jpeg.tar.gz into data/raw)" >&2; exit 1; }
DATA=$(cd "$DATA" && pwd)
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0 1 2}

common=(
  -S data.name=imagefolder -S "data.root=$DATA"
  -S topology.image.resolution=50            # the TGD recipe's 50 x 50 PIs (params.yaml's default is sized for digits)
  -S models.teacher_image=wrn16_1 -S models.teacher_topology=wrn10_1 -S models.student=wrn10_1
  -S train.epochs=3 -S train.device=cpu -S train.threads=1
  -S evaluate.latency_repeats=5 -S 'evaluate.noise_std=[0.0,0.1,0.2]'
)
names=() runs=()
queue() {   # queue NAME OVERRIDES...: one experiment, queued below once every name is checked
  names+=("$1")
  runs+=("$(printf '%q ' dvc exp run --queue -n "$1" "${common[@]}" "${@:2}")")
}

for s in $SEEDS; do   # the authors' setting (params.yaml's distill defaults)
  queue "grid-mean-a0.99-s$s" -S train.seed="$s" -S 'distill.methods=[kd,sp,tgd]'
done
for s in $SEEDS; do   # alpha 0.9: teacher 2 a little more voice
  queue "grid-mean-a0.9-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' -S distill.tgd.alpha=0.9
done
for s in $SEEDS; do   # the textbook KL (batchmean), kd with it too: grid-bm-* pair with this kd
  queue "grid-bm-a0.99-s$s" -S train.seed="$s" -S 'distill.methods=[kd,tgd]' \
    -S distill.kd.kl_reduction=batchmean -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do
  queue "grid-bm-a0.9-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.9 -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do   # teacher 2 on stacked sequence + cubical PIs (12 channels)
  queue "grid-seq-cubical-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S 'topology.image.filtrations=[sequence,cubical]'
done
for s in $SEEDS; do   # teacher 2 on cubical PIs (H0 + H1 of the 2-D cubical complex)
  queue "grid-cubical-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S 'topology.image.filtrations=[cubical]'
done
for s in $SEEDS; do
  queue "grid-mean-a0.7-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' -S distill.tgd.alpha=0.7
done
for s in $SEEDS; do   # presets/balanced-teachers.yaml
  queue "grid-bm-a0.7-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S distill.tgd.alpha=0.7 -S distill.tgd.kl_reduction=batchmean
done
for s in $SEEDS; do   # the stronger teacher 2 with a voice
  queue "grid-cubical-a0.7-s$s" -S train.seed="$s" -S 'distill.methods=[tgd]' \
    -S 'topology.image.filtrations=[cubical]' -S distill.tgd.alpha=0.7
done

# DVC queues a name twice without a word and keeps one of the two runs (both report Success):
# refuse any name that this commit's experiments or the queue already hold, or that repeats.
taken=$( { dvc exp ls --name-only; dvc queue status | awk '$NF ~ /^(Queued|Running|Success|Failed)$/ {print $2}'; } 2>/dev/null || true)
clash=$(printf '%s\n' "${names[@]}" | sort | uniq -d; printf '%s\n' "${names[@]}" | grep -x -F -f <(printf '%s\n' "$taken" | grep .) || true)
if [ -n "$clash" ]; then
  echo "cpu-grid: experiment names taken already (dvc exp remove NAME / dvc queue remove NAME):" $clash >&2
  exit 1
fi
for run in "${runs[@]}"; do eval "$run"; done

if [ "${START:-1}" = 0 ]; then
  echo "cpu-grid: queued ${#names[@]} experiments; start with: OMP_NUM_THREADS=1 dvc queue start -j $JOBS"
else
  OMP_NUM_THREADS=1 dvc queue start -j "$JOBS"
  echo "cpu-grid: queued ${#names[@]} experiments, started $JOBS workers; follow with: dvc queue status"
fi
