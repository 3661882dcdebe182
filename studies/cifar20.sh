#!/usr/bin/env bash
# docs/results.md §1e as queued DVC experiments, for 2 CPU cores: the user's 20 epochs (Adam,
# lr 0.0005, batch 64) on all 50,000 / 10,000 CIFAR-10 images, teacher 1 WRN-16-1, teacher 2
# WRN-10-1 on the TGD recipe's 50 x 50 sequence PIs, WRN-10-1 students, one thread per run,
# seed by seed. Methods: scratch, kd, sp, tgd, tgd_t1 (tgd with teacher 1 alone = alpha 1),
# aver, dkd; and tgd with two raw teachers (models.teacher_topology_input=x).
#
#   mkdir -p data/raw && tar -xzf cifar10-jpeg.tar.gz -C data/raw
#   bash studies/cifar20.sh [DATA]          # DATA: default data/raw/cifar10-jpeg
#
# One seed is ~4 h of two busy cores. DVC runs the stages of one experiment one after another,
# so each seed is split into phases of two experiments that target disjoint stages (run side by
# side by `dvc queue start -j 2`); the script waits for a phase's queue to empty before queueing
# the next, whose stages find the earlier phases' outputs in the run cache:
#   1 teacher1: train_teacher@image + train_student    | teacher2: topology + train_teacher@topology
#   2 kd-tgd:   teachers + distill@kd + distill@tgd    | raw2: the two-raw-teachers control, whole DAG
#   3 t1-sp:    distill@tgd_t1 + distill@sp            | aver-dkd: distill@aver + distill@dkd
#   4 c20-s<seed>: the whole DAG, every training stage restored: export, evaluate (the tables)
# Every experiment of a seed has the same params (the whole methods list included, so the teacher
# cache is the same stage), so nothing is trained twice. A phase stopped halfway is re-run with
# PHASE=<n> (finished stages restore; names already taken must be removed first, see below).
#
# Environment: SEEDS (default "0 1 2"), PHASE (first phase of the first seed, default 1),
# START=0 to queue the first phase only, without starting or waiting. Queued runs execute in a
# temporary copy of the repository holding only what Git or DVC tracks, so DATA is passed as an
# absolute data.root. A name that this commit's experiments or the queue hold already stops the
# script before it queues anything (`dvc exp remove NAME`, `dvc queue remove NAME`).
#
# Compare (python -m pipeline.experiments, paired by train.seed):
#   python -m pipeline.experiments --match 'c20-s*'                          # mean ± interval per model
#   python -m pipeline.experiments --match 'c20-s*' --baseline kd            # each method - kd per seed
#   python -m pipeline.experiments --match 'c20-s*' --baseline tgd_t1        # tgd - tgd at alpha 1
#   python -m pipeline.experiments --match 'c20-s*' --baseline kd --metric best_acc   # best-epoch accuracy (optimistic)
#   python -m pipeline.experiments --match 'c20-raw2-s*' --baseline-match 'c20-s*' --baseline tgd --ignore models.teacher_topology_input
set -euo pipefail
DATA=${1:-data/raw/cifar10-jpeg}
[ -d "$DATA" ] || { echo "cifar20: no data folder $DATA (unpack cifar10-jpeg.tar.gz into data/raw)" >&2; exit 1; }
DATA=$(cd "$DATA" && pwd)
SEEDS=${SEEDS:-0 1 2}
PHASE=${PHASE:-1}

common=(
  -S data.name=imagefolder -S "data.root=$DATA"
  -S topology.image.resolution=50            # the TGD recipe's 50 x 50 PIs (params.yaml's default is sized for digits)
  -S models.teacher_image=wrn16_1 -S models.teacher_topology=wrn10_1 -S models.student=wrn10_1
  -S train.epochs=20 -S train.device=cpu -S train.threads=1
  -S evaluate.latency_repeats=5 -S 'evaluate.noise_std=[0.0,0.1,0.2]'
)
METHODS='[kd,sp,tgd,aver,dkd,tgd_t1]'
RAW2=(-S models.teacher_topology_input=x)   # and only tgd: the control's one student

# phase_runs SEED PHASE: the phase's experiments, one "NAME|OVERRIDES|TARGETS" line each
phase_runs() {
  local s=$1
  case $2 in
    1) echo "c20-s$s-teacher1||train_teacher@image train_student"
       echo "c20-s$s-teacher2||train_teacher@topology" ;;
    2) echo "c20-s$s-kd-tgd||teachers distill@kd distill@tgd"
       echo "c20-raw2-s$s|raw2|" ;;
    3) echo "c20-s$s-t1-sp||distill@tgd_t1 distill@sp"
       echo "c20-s$s-aver-dkd||distill@aver distill@dkd" ;;
    4) echo "c20-s$s||" ;;
  esac
}

plan=() names=()
first=$PHASE
for s in $SEEDS; do
  for p in $(seq "$first" 4); do
    while IFS='|' read -r name variant targets; do
      names+=("$name")
      plan+=("$p|$s|$name|$variant|$targets")
    done < <(phase_runs "$s" "$p")
  done
  first=1
done

# DVC queues a name twice without a word and keeps one of the two runs (both report Success):
# refuse any name that this commit's experiments or the queue already hold, or that repeats.
taken=$( { dvc exp ls --name-only; dvc queue status | awk '$NF ~ /^(Queued|Running|Success|Failed)$/ {print $2}'; } 2>/dev/null || true)
clash=$(printf '%s\n' "${names[@]}" | sort | uniq -d; printf '%s\n' "${names[@]}" | grep -x -F -f <(printf '%s\n' "$taken" | grep .) || true)
if [ -n "$clash" ]; then
  echo "cifar20: experiment names taken already (dvc exp remove NAME / dvc queue remove NAME):" $clash >&2
  exit 1
fi

status_of() {   # the names of the queue's experiments whose status is one of $1 (a regex)
  dvc queue status 2>/dev/null | awk -v s="^($1)\$" '$NF ~ s {print $2}'
}
wait_for_phase() {   # until no experiment is queued or running; stop if one of this phase failed
  while [ -n "$(status_of 'Queued|Running')" ]; do sleep 60; done
  failed=$(printf '%s\n' "${phase_names[@]}" | grep -x -F -f <(status_of Failed | grep . || echo $'\x1f') || true)
  if [ -n "$failed" ]; then
    echo "cifar20: failed:" $failed "- see dvc queue logs NAME; re-run with SEEDS=<seed> PHASE=<phase>" >&2
    exit 1
  fi
}

run_phase() {   # start the queued phase, wait for it (START=0: only say how to start it)
  if [ "${START:-1}" = 0 ]; then
    echo "cifar20: queued phase ${current%/*} of seed ${current#*/}; start with: OMP_NUM_THREADS=1 dvc queue start -j 2"
    exit 0
  fi
  OMP_NUM_THREADS=1 dvc queue start -j 2
  echo "cifar20: phase ${current%/*} of seed ${current#*/} started ($(date -u +%H:%M) UTC)"
  wait_for_phase
}

current="" phase_names=()
for entry in "${plan[@]}"; do
  IFS='|' read -r p s name variant targets <<<"$entry"
  if [ "$p/$s" != "$current" ] && [ -n "$current" ]; then run_phase; phase_names=(); fi
  current="$p/$s"
  phase_names+=("$name")
  if [ "$variant" = raw2 ]; then extra=("${RAW2[@]}" -S 'distill.methods=[tgd]'); else extra=(-S "distill.methods=$METHODS"); fi
  # shellcheck disable=SC2086  # targets: stage names, split on purpose
  dvc exp run --queue -n "$name" "${common[@]}" -S train.seed="$s" "${extra[@]}" $targets
done
run_phase
echo "cifar20: seeds $SEEDS done ($(date -u +%H:%M) UTC); compare with python -m pipeline.experiments --match 'c20-s*'"
