#!/usr/bin/env bash
# One-GPU check, under 8 minutes on one H100/H200 with no network:
#   1. installs albumentations / openslide / imagecodecs from .whl/ when missing (scripts/build_wheels.sh),
#   2. runs the test-suite's GPU-marked tests,
#   3. runs scripts/bench_train.py with the full-size H-optimus-0 architecture (random weights)
#      -> ViT-B/14 (configs/h0mini.yaml) for a few hundred steps, each speed option on and off,
#   4. runs scripts/bench_embed.py with the ViT-B/14 architecture,
#   5. prints a summary table.
# Everything is written to $OUT (if set) or benchmarks/results/<date>_<card>/.
#
#   scripts/gpu_check.sh                 # defaults: 200 baseline steps, 10 per option
#   STEPS=300 OPTION_STEPS=20 scripts/gpu_check.sh
#   BENCH_CONFIG=configs/demo.yaml BATCH=4 STEPS=2 OPTION_STEPS=1 OPTIONS=baseline \
#     EMBED_ARGS=--quick scripts/gpu_check.sh   # smoke test of the script itself on a CPU machine
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 PIP_NO_INDEX=1
# $PYTHON if given, else the project's .venv when it has torch, else the machine's python3
PY=${PYTHON:-python3}
if [[ -z "${PYTHON:-}" && -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then
  PY=.venv/bin/python
fi
STEPS=${STEPS:-200}
OPTION_STEPS=${OPTION_STEPS:-10}
BATCH=${BATCH:-64}
BENCH_CONFIG=${BENCH_CONFIG:-configs/h0mini.yaml}
OPTIONS=${OPTIONS:-baseline,attention=eager,fused_adamw=off,grad_checkpointing,augment_device=gpu,compile_student+teacher}
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
"$PY" -c "import openslide; openslide.OpenSlide" 2>/dev/null || missing+=(openslide)
"$PY" -c "import imagecodecs" 2>/dev/null || missing+=(imagecodecs)
if ((${#missing[@]})); then
  if compgen -G ".whl/*.whl" >/dev/null; then
    # into a folder of its own on PYTHONPATH: the machine's environment stays as it was
    echo "== missing ${missing[*]}: installing .whl/ into /tmp/vitkd-site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/vitkd-site .whl/*.whl || echo "!! wheel install failed"
    export PYTHONPATH="$PYTHONPATH:/tmp/vitkd-site"
  else
    echo "!! missing ${missing[*]} and no .whl/*.whl: run scripts/build_wheels.sh and carry .whl"
  fi
fi
STATUS[wheels]=$("$PY" -c "import albumentations, openslide, imagecodecs; print('ok')" 2>/dev/null || echo missing)

# 2. GPU tests ----------------------------------------------------------------------------
echo "== [$(elapsed)s] pytest -m gpu"
timeout 150 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests --junitxml="$RESULTS/pytest_gpu.xml"
rc=$?
STATUS[pytest_gpu]=$([[ $rc == 0 ]] && echo passed || echo "failed (rc=$rc)")

# 3. training benchmark -------------------------------------------------------------------
echo "== [$(elapsed)s] bench_train.py --config $BENCH_CONFIG"
timeout 330 "$PY" scripts/bench_train.py --config "$BENCH_CONFIG" --batch-size "$BATCH" \
  --steps "$STEPS" --option-steps "$OPTION_STEPS" --warmup 3 --options "$OPTIONS" \
  --json "$RESULTS/bench_train.json" | tee "$RESULTS/bench_train.txt"
rc=${PIPESTATUS[0]}
STATUS[bench_train]=$([[ $rc == 0 ]] && echo "ok" || echo "failed (rc=$rc)")

# 4. embedding benchmark ------------------------------------------------------------------
# the ViT-B/14 student's architecture, bf16 on the card, 8 of the 16 cores decoding
EMBED_ARGS=${EMBED_ARGS:---model vit_base_patch14_reg4_dinov2 --batch-size 256 --workers 8}
echo "== [$(elapsed)s] bench_embed.py $EMBED_ARGS"
left=$(( 450 - $(elapsed) ))
(( left < 30 )) && left=30
# shellcheck disable=SC2086  # EMBED_ARGS is a list of words
timeout "$left" "$PY" scripts/bench_embed.py $EMBED_ARGS | tee "$RESULTS/bench_embed.txt"
rc=${PIPESTATUS[0]}
STATUS[bench_embed]=$([[ $rc == 0 ]] && echo "ok" || echo "failed (rc=$rc)")

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
