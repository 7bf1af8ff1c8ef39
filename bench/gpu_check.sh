#!/usr/bin/env bash
# The GPU check of issue 25 (section 5): under 10 minutes on one H100, every figure and log in
# one folder. Run from anywhere on a GPU machine, in a fresh copy of the repository:
#
#   bash bench/gpu_check.sh [--dry-run] [FOLDER]     (FOLDER: default $OUT if set, else gpu-check/)
#
# Parts, each time-boxed with `timeout` so that one failing or slow part never stops the others;
# FOLDER/summary.txt lists each part's status and time, FOLDER/<part>.log its output:
#   setup    an environment: $PYTHON if given; else the project's .venv if it imports torch; else
#            a venv on top of the system's torch (--system-site-packages) with the project's
#            dependencies from the package index pip is configured with (Makefile `setup`). No
#            network is needed when the index is local; a torch without CUDA is said plainly.
#   a_tests  the tests marked `cuda` (tests/test_cuda.py): GPU bf16/fp16 run resumed on the CPU,
#            torchrun with 1 rank on NCCL
#   b_steps  fp32 and bf16 step times of the paper-size teacher and student (bench_scaling.py,
#            1 rank, batch 8 x 2.5 s as the recipes), and tfckd with the paper-size pair
#   c_torchrun  torchrun --nproc_per_node 1 of the voicebank-demand:student recipe's dry run on
#            the mini set, on cuda in bf16
#   d_packing  lite tfckd training (bench_scaling.py workers) 1, 2 and 4 at once on cuda:0: total
#            audio seconds per second
#   e_seeds  the lite distillation experiment on the `small` set (built first by e_data):
#            `reproduce --device cuda --jobs 8 --stop-after 0.02` (e_seeds), as many runs and seeds
#            as fit (more with SEEDS_S / STOP_AFTER_HOURS), then its --status (e_status). It
#            writes into FOLDER/experiment, never into experiments/.
# Without CUDA every GPU part reports "skipped: no CUDA" at once (the CPU-safe check of the
# script itself).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
DEST="${1:-${OUT:-gpu-check}}"
mkdir -p "$DEST" && DEST="$(cd "$DEST" && pwd)"
SUMMARY="$DEST/summary.txt"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
cd "$ROOT"

# seconds per part, about 9.5 minutes in all; each may be overridden from the environment, e.g.
# SEEDS_S=3600 STOP_AFTER_HOURS=0.9 for a longer session that trains more of the experiment
: "${SETUP_S:=90}" "${TESTS_S:=60}" "${STEPS_S:=90}" "${TORCHRUN_S:=60}" "${PACKING_S:=75}"
: "${DATA_S:=90}" "${SEEDS_S:=90}" "${STATUS_S:=20}"
: "${STOP_AFTER_HOURS:=0.02}"   # reproduce's own stop (72 s), inside SEEDS_S: it stops resumably
: "${JOBS:=8}"                  # experiment runs side by side on the one GPU
# the generated data sets stay out of FOLDER (which is meant to be copied back whole)
: "${DATA_DIR:=${TMPDIR:-/tmp}/tfckd-gpu-check-data}"
HAVE_CUDA=0

log() { echo "$*" | tee -a "$SUMMARY"; }

# part NAME LIMIT NEEDS_CUDA COMMAND: run COMMAND (a bash string) under `timeout LIMIT`
part() {
  local name=$1 limit=$2 needs_cuda=$3 command=$4 start rc status
  if [ "$DRY_RUN" = 1 ]; then printf '%-11s %4ss  %s\n' "$name" "$limit" "$command"; return; fi
  if [ "$needs_cuda" = 1 ] && [ "$HAVE_CUDA" != 1 ]; then
    log "$(printf '%-11s %-28s %5ss' "$name" "skipped: no CUDA" 0)"; return
  fi
  start=$(date +%s)
  timeout --kill-after=10 "$limit" bash -c "$command" > "$DEST/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status="timed out after ${limit}s" ;; *) status="failed (exit $rc)" ;; esac
  log "$(printf '%-11s %-28s %5ss' "$name" "$status" $(( $(date +%s) - start )))"
}

setup_command='
set -e
if [ -n "${PYTHON:-}" ]; then echo "using PYTHON=$PYTHON"; exit 0; fi
if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, tfckd_lite" 2>/dev/null; then
  echo "using the project .venv"; exit 0; fi
command -v python3 >/dev/null || { echo "ERROR: no python3 on this machine"; exit 3; }
VENV=${TMPDIR:-/tmp}/tfckd-gpu-venv
if python3 -c "import torch" 2>/dev/null; then
  echo "system torch: $(python3 -c "import torch; print(torch.__version__, torch.version.cuda)")"
  python3 -m venv --system-site-packages "$VENV" || { echo "ERROR: python3 -m venv is missing (apt-get install python3-venv)"; exit 3; }
else
  echo "WARNING: no torch on the system python; pip installs the one its index offers (may be CPU-only)"
  python3 -m venv "$VENV" || { echo "ERROR: python3 -m venv is missing (apt-get install python3-venv)"; exit 3; }
fi
# the project dependencies; torch is kept when the system one satisfies pyproject (torch>=2.5):
# constraints.txt is not used here, its pin is the CPU build
"$VENV/bin/python" -m pip install --quiet -e ".[test]" || { echo "ERROR: pip could not install the dependencies (no local package index reachable?)"; exit 3; }
echo "$VENV/bin/python" > "$DEST/.python"
'

echo "gpu_check: $(date -u +%FT%TZ), writing into $DEST" | tee "$SUMMARY"
[ "$DRY_RUN" = 1 ] && echo "plan (part, time box, command):"
part setup $SETUP_S 0 "DEST='$DEST'; $setup_command"
PY="${PYTHON:-}"
[ -z "$PY" ] && [ -f "$DEST/.python" ] && PY="$(cat "$DEST/.python")"
[ -z "$PY" ] && PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3
if [ "$DRY_RUN" = 0 ]; then
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    HAVE_CUDA=1
    log "python: $PY; $("$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))")"
    nvidia-smi > "$DEST/nvidia-smi.txt" 2>&1 || true
  else
    log "python: $PY; no CUDA: $("$PY" -c "import torch; print('torch', torch.__version__, 'built with CUDA', torch.version.cuda)" 2>&1 | tail -1)"
  fi
fi

SCALING="\"$PY\" bench/bench_scaling.py --device cuda --ranks 1"
part a_tests $TESTS_S 1 "\"$PY\" -m pytest tests/test_cuda.py -m cuda -v -ra -p no:cacheprovider"
part b_steps $STEPS_S 1 "for precision in fp32 bf16; do
  for model in paper-teacher paper-student; do
    $SCALING --methods none --student \$model --batch 8 --seconds 2.5 --steps 10 --precision \$precision
  done
  $SCALING --methods tfckd --teacher paper-teacher --student paper-student --batch 8 --seconds 2.5 --steps 5 --precision \$precision
done"
part c_torchrun $TORCHRUN_S 1 "set -e
\"$PY\" -m tfckd_lite data build --profile mini --out '$DATA_DIR/mini'
\"$PY\" -m torch.distributed.run --standalone --nproc_per_node 1 -m tfckd_lite train \
  --recipe voicebank-demand:student --dry-run --data '$DATA_DIR/mini' --out '$DEST/runs/c_torchrun' \
  --device cuda --precision bf16"
part d_packing $PACKING_S 1 "for k in 1 2 4; do
  for i in \$(seq \$k); do
    $SCALING --methods tfckd --batch 8 --seconds 1 --steps 30 > '$DEST/d_packing_'\$k'_'\$i'.txt' 2>&1 &
  done
  wait
  awk -v k=\$k '\$1 == \"tfckd\" { total += \$4; n++ }
    END { printf \"%d at once on cuda:0: %d reported, total %.1f audio s/s\n\", k, n, total }' \
    '$DEST'/d_packing_\${k}_*.txt
done"
part e_data $DATA_S 1 "\"$PY\" -m tfckd_lite data build --profile small --out '$DATA_DIR/small'"
part e_seeds $SEEDS_S 1 "\"$PY\" -m tfckd_lite reproduce --data '$DATA_DIR/small' \
  --out '$DEST/experiment' --device cuda --jobs $JOBS --stop-after $STOP_AFTER_HOURS"
part e_status $STATUS_S 1 "\"$PY\" -m tfckd_lite reproduce --data '$DATA_DIR/small' \
  --out '$DEST/experiment' --status"
[ "$DRY_RUN" = 1 ] && exit 0
log "done: $(date -u +%FT%TZ); logs in $DEST"
