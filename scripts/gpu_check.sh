#!/usr/bin/env bash
# One-GPU check, under 8 minutes on one H100/H200 with no network:
#   1. installs albumentations / openslide from .whl/ when they are missing (scripts/build_wheels.sh),
#   2. runs the test-suite's GPU-marked tests,
#   3. runs scripts/bench_train.py with the full-size H-optimus-0 architecture (random weights)
#      -> ViT-B/14 (configs/h0mini.yaml) for a few hundred steps, each speed option on and off,
#   4. runs scripts/bench_embed.py when it exists,
#   5. prints a summary table.
# Everything is written to $OUT (if set) or benchmarks/results/<date>_<card>/.
#
#   scripts/gpu_check.sh                 # defaults: 200 baseline steps, 10 per option
#   STEPS=300 OPTION_STEPS=20 scripts/gpu_check.sh
#   BENCH_CONFIG=configs/demo.yaml BATCH=4 STEPS=1 OPTION_STEPS=1 OPTIONS=baseline \
#     scripts/gpu_check.sh             # smoke test of the script itself on a CPU machine
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 PIP_NO_INDEX=1
PY=${PYTHON:-python3}
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=.venv/bin/python; fi
STEPS=${STEPS:-200}
OPTION_STEPS=${OPTION_STEPS:-10}
BATCH=${BATCH:-64}
BENCH_CONFIG=${BENCH_CONFIG:-configs/h0mini.yaml}
OPTIONS=${OPTIONS:-baseline,attention=eager,fused_adamw=off,grad_checkpointing,augment_device=cpu,compile_student+teacher}
T0=$(date +%s)

card=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no-cuda')" 2>/dev/null || echo unknown)
slug=$(echo "$card" | tr ' /' '__' | tr -cd '[:alnum:]_-')
RESULTS=${OUT:-benchmarks/results/$(date +%Y-%m-%d)_${slug}}
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
echo "== vitkd gpu_check $(date -Is) on: $card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
elapsed() { echo $(( $(date +%s) - T0 )); }
declare -A STATUS

# 1. wheels -------------------------------------------------------------------------------
missing=()
"$PY" -c "import albumentations" 2>/dev/null || missing+=(albumentations)
"$PY" -c "import openslide; openslide.OpenSlide" 2>/dev/null || missing+=(openslide-python openslide-bin)
if ((${#missing[@]})); then
  if [[ -d .whl ]]; then
    echo "== installing ${missing[*]} from .whl/"
    "$PY" -m pip install --no-index --find-links .whl "${missing[@]}" || echo "!! wheel install failed"
  else
    echo "!! missing ${missing[*]} and no .whl/ folder: run scripts/build_wheels.sh and carry .whl"
  fi
fi
STATUS[wheels]=$("$PY" -c "import albumentations, openslide; print('ok')" 2>/dev/null || echo missing)

# 2. GPU tests ----------------------------------------------------------------------------
echo "== [$(elapsed)s] pytest -m gpu"
timeout 120 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests --junitxml="$RESULTS/pytest_gpu.xml"
rc=$?
STATUS[pytest_gpu]=$([[ $rc == 0 ]] && echo passed || echo "failed (rc=$rc)")

# 3. training benchmark -------------------------------------------------------------------
echo "== [$(elapsed)s] bench_train.py --config $BENCH_CONFIG"
timeout 380 "$PY" scripts/bench_train.py --config "$BENCH_CONFIG" --batch-size "$BATCH" \
  --steps "$STEPS" --option-steps "$OPTION_STEPS" --warmup 3 --options "$OPTIONS" \
  --json "$RESULTS/bench_train.json" | tee "$RESULTS/bench_train.txt"
rc=${PIPESTATUS[0]}
STATUS[bench_train]=$([[ $rc == 0 ]] && echo "ok" || echo "failed (rc=$rc)")

# 4. embedding benchmark ------------------------------------------------------------------
if [[ -f scripts/bench_embed.py ]]; then
  echo "== [$(elapsed)s] bench_embed.py"
  help=$("$PY" scripts/bench_embed.py --help 2>&1 || true)
  args=()
  [[ "$help" == *"--device"* ]] && args+=(--device cuda)
  left=$(( 450 - $(elapsed) ))
  (( left < 30 )) && left=30
  timeout "$left" "$PY" scripts/bench_embed.py "${args[@]}" | tee "$RESULTS/bench_embed.txt"
  rc=${PIPESTATUS[0]}
  STATUS[bench_embed]=$([[ $rc == 0 ]] && echo "ok" || echo "failed (rc=$rc)")
else
  echo "== scripts/bench_embed.py not found: embedding benchmark skipped"
  STATUS[bench_embed]="skipped (no script)"
fi

# 5. summary ------------------------------------------------------------------------------
echo
echo "== summary ($(elapsed)s, $card)"
printf '| %-12s | %-40s |\n' stage result
printf '| %-12s | %-40s |\n' ------------ ----------------------------------------
for stage in wheels pytest_gpu bench_train bench_embed; do
  printf '| %-12s | %-40s |\n' "$stage" "${STATUS[$stage]}"
done
if [[ -f "$RESULTS/bench_train.txt" ]]; then
  echo
  grep -E '^\|| w=[0-9]+ +full' "$RESULTS/bench_train.txt" || true
  grep -E '^(data pipeline ceiling|FLOPs per sample|ratio=)' "$RESULTS/bench_train.txt" || true
fi
[[ -f "$RESULTS/bench_embed.txt" ]] && tail -n 3 "$RESULTS/bench_embed.txt"
echo "results in $RESULTS"
