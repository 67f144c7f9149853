#!/usr/bin/env bash
# Put the wheels the GPU machine lacks into .whl/ (git-ignored; carried with scripts/gpu_check.sh).
#
# The GPU machine (Python 3.12) has torch, timm, lightning, h5py, tifffile and OpenCV but no
# network: albumentations, openslide-python, openslide-bin, imagecodecs (JPEG tiles in TIFFs) and
# their dependencies travel as wheels. Wheels of packages such a machine always has (numpy, scipy,
# PyYAML, Pillow) are left out to stay small, and so is OpenCV (59 MiB, over the 64 MiB a device
# call carries with the rest) unless WITH_OPENCV=1.
#
#   scripts/build_wheels.sh                       # ~40 MiB, for the GPU machine's Python 3.12
#   PYTHON_VERSION=3.11 scripts/build_wheels.sh   # for another interpreter (3.11: this machine)
#   WITH_OPENCV=1 scripts/build_wheels.sh         # +59 MiB, for a machine without cv2
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
DEST=${DEST:-.whl}
PACKAGES=(albumentations==2.0.8 "openslide-python>=1.3" "openslide-bin>=4.0" "imagecodecs>=2024.1")
# typing-extensions travels although the machine has one: pydantic needs a recent release
SKIP_RE='^(numpy|scipy|pyyaml|PyYAML|pillow|Pillow)-'
if [[ "${WITH_OPENCV:-0}" != 1 ]]; then
  SKIP_RE='^(numpy|scipy|pyyaml|PyYAML|pillow|Pillow|opencv_python_headless)-'
fi

PYTHON_VERSION=${PYTHON_VERSION:-3.12}
target=(--python-version "$PYTHON_VERSION" --implementation cp)
for n in 1 _2_5 2014 _2_17 _2_27 _2_28; do
  target+=(--platform "manylinux${n}_x86_64")
done
mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each package: two stop the install on the GPU machine
"$PIP" download --only-binary=:all: --dest "$DEST" "${target[@]}" "${PACKAGES[@]}"
for wheel in "$DEST"/*.whl; do
  if [[ "$(basename "$wheel")" =~ $SKIP_RE ]]; then
    rm -f "$wheel"
  fi
done
echo "wheels in $DEST:"
ls -la "$DEST"
du -sh "$DEST"
