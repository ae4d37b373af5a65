#!/usr/bin/env bash
# The GPU measurement in one run, under 8 minutes: detector throughput by batch size on the
# machine's GPU, Ultralytics' `predict` beside the tensor path (bench/inference.py), with an
# untrained YOLOv8n built from yolov8n.yaml (a GPU machine here has no weights and no network).
#
# Before, on a machine with the registries (the GPU machine has none), fetch the one package
# the GPU image lacks:
#   python3 -m pip download --no-deps --only-binary=:all: ultralytics==8.4.190 -d .whl
# then run this there from the repository root, carrying .whl:
#   bash bench/gpu.sh                      (DEVICE=cpu BATCHES=1,2 SECONDS=1 to try it on a CPU)
set -euo pipefail
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-1,8,32,64,128,256}
SECONDS_EACH=${SECONDS:-3}

if ! "$PYTHON" -c "import ultralytics" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps .whl/ultralytics-*.whl
fi
"$PYTHON" - <<'PY'
import platform, torch, torchvision
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"python {platform.python_version()} torch {torch.__version__}"
      f" torchvision {torchvision.__version__}; {gpu}")
PY
export YOLO_OFFLINE=1 PYTHONPATH=.
timeout 420 "$PYTHON" -m bench.inference --model yolov8n.yaml --device "$DEVICE" \
    --batches "$BATCHES" --seconds "$SECONDS_EACH"
