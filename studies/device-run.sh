#!/usr/bin/env bash
# One call on a lent GPU machine that has PyTorch but neither DVC, zarr nor pydantic, and no
# network (docs/results.md §1d): install the carried wheels, unpack the carried CIFAR-10 JPEGs,
# time the training loop (pipeline.bench train on CUDA), then run studies/device-h200.yaml with
# pipeline.study until the budget is spent, and leave the report in OUT.
#
#   bash studies/device-run.sh WHEEL_DIR CIFAR_TAR OUT [BUDGET_S]
#
# WHEEL_DIR: wheels of what requirements.txt lists and the machine lacks (python 3.12, x86-64),
# fetched with `pip download --no-deps --only-binary=:all: --python-version 3.12 ...`.
set -u
WHEELS=$1 TAR=$2 OUT=$3 BUDGET=${4:-560}
start=$(date +%s)
WORK=$(mktemp -d)   # wheels, data and runs: the machine is given back afterwards
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl || exit 1
cp studies/device_sitecustomize.py $WORK/site/sitecustomize.py   # DVCLive without DVC's Git layer
export PYTHONPATH=$WORK/site:$PWD PYTHONUNBUFFERED=1
mkdir -p $WORK/data && tar -xzf "$TAR" -C $WORK/data || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c "import torch, numba, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__, 'numpy', numpy.__version__)"
} > "$OUT/machine.txt" 2>&1
timeout 70 python3 -m pipeline.bench train --device cuda --amp --n 2048 --repeat 2 > "$OUT/bench-train.txt" 2>&1
left=$(( BUDGET - ($(date +%s) - start) - 20 ))
python3 -m pipeline.study studies/device-h200.yaml --work $WORK/study --slots 6 \
  --set data.root=$WORK/data/cifar10-jpeg --deadline "$left" > "$OUT/study.log" 2>&1
cp $WORK/study/results.md $WORK/study/results.json "$OUT/" 2>/dev/null
cd $WORK/study && tar -czf "$OUT/runs.tgz" logs $(ls -d */seed*/*/data/live */seed*/*/data/metrics */seed*/*/data/models/*/summary.json 2>/dev/null)
echo "device-run: $(( $(date +%s) - start )) s"
