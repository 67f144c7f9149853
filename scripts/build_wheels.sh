#!/usr/bin/env bash
# Put the wheels the GPU machine lacks into .whl/ (git-ignored; carried with scripts/gpu_check.sh).
#
# The GPU machine has torch, timm and lightning but no network: albumentations, openslide-python,
# openslide-bin and their dependencies travel as wheels. Wheels of packages such a machine always
# has (numpy, scipy, PyYAML, typing-extensions, Pillow) are left out to stay small, and so is
# OpenCV (59 MiB, over the 64 MiB a device call carries with the rest) unless WITH_OPENCV=1.
#
#   scripts/build_wheels.sh                       # ~10 MiB, for this Python
#   WITH_OPENCV=1 scripts/build_wheels.sh         # ~69 MiB, for a machine without cv2
#   PYTHON_VERSION=3.12 scripts/build_wheels.sh   # wheels for another interpreter version
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
DEST=${DEST:-.whl}
PACKAGES=(albumentations==2.0.8 "openslide-python>=1.3" "openslide-bin>=4.0")
SKIP_RE='^(numpy|scipy|pyyaml|PyYAML|typing_extensions|pillow|Pillow)-'
if [[ "${WITH_OPENCV:-0}" != 1 ]]; then
  SKIP_RE='^(numpy|scipy|pyyaml|PyYAML|typing_extensions|pillow|Pillow|opencv_python_headless)-'
fi

target=()
if [[ -n "${PYTHON_VERSION:-}" ]]; then
  target=(--python-version "$PYTHON_VERSION" --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64)
fi
mkdir -p "$DEST"
"$PIP" download --only-binary=:all: --dest "$DEST" "${target[@]}" "${PACKAGES[@]}"
for wheel in "$DEST"/*.whl; do
  if [[ "$(basename "$wheel")" =~ $SKIP_RE ]]; then
    rm -f "$wheel"
  fi
done
echo "wheels in $DEST:"
ls -la "$DEST"
du -sh "$DEST"
