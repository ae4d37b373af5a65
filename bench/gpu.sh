#!/usr/bin/env bash
# The GPU measurement in one run, under 8 minutes, printing as it goes:
#   1. the detector by batch size: Ultralytics' `predict`, the tensor path, the forward pass
#      (bench/inference.py);
#   2. camera-frames a second end to end, decoded frame to events, batches 1-256, beside
#      `predict` and the forward pass (bench/sweep.py);
#   3. four workers fed by one inference process against four with a model each
#      (bench/inference_server.py);
#   4. decoding a 1080p stream on NVDEC against the CPU (bench/decoding.py).
# The network is an untrained YOLOv8n built from yolov8n.yaml (a GPU machine here has no
# weights and no network). It finds nothing, so tracking and analytics cost nothing in 2;
# their CPU per frame with real weights is bench/sweep.py's on a CPU (docs/performance.md).
#
# Before, on a machine with the registries (the GPU machine has none), fetch the packages
# the GPU image may lack (about 45 MB; the image must already have torch and OpenCV):
#   python3 -m pip download --no-deps --only-binary=:all: ultralytics==8.4.190 av==18.1.0 \
#       lap shapely structlog pydantic pydantic-core annotated-types typing-inspection psutil \
#       -d .whl
# then run this there from the repository root, carrying .whl:
#   bash bench/gpu.sh           (DEVICE=cpu BATCHES=1,2 SECONDS=1 to try it on a CPU)
set -euo pipefail
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-1,8,32,64,128,256}
SECONDS_EACH=${SECONDS:-3}
MODEL=${MODEL:-yolov8n.yaml}
CONF=${CONF:-0.25}

for package in ultralytics av lap shapely structlog pydantic-core pydantic annotated-types \
        typing-inspection psutil; do
    module=${package//-/_}
    if ! "$PYTHON" -c "import $module" 2>/dev/null; then
        "$PYTHON" -m pip install --quiet --no-index --no-deps --find-links .whl "$package"
    fi
done
"$PYTHON" - <<'PY'
import platform, torch, torchvision
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"python {platform.python_version()} torch {torch.__version__}"
      f" torchvision {torchvision.__version__}; {gpu}", flush=True)
PY
export YOLO_OFFLINE=1 PYTHONPATH=. PYTHONUNBUFFERED=1
echo "== 1. detector by batch"
timeout 150 "$PYTHON" -m bench.inference --model "$MODEL" --device "$DEVICE" \
    --batches "$BATCHES" --seconds "$SECONDS_EACH" || echo "(1 stopped: $?)"
echo "== 2. end to end by batch"
timeout 170 "$PYTHON" -m bench.sweep --model "$MODEL" --device "$DEVICE" --conf "$CONF" \
    --batches "$BATCHES" --seconds "$SECONDS_EACH" || echo "(2 stopped: $?)"
echo "== 3. one inference process for four workers"
timeout 80 "$PYTHON" -m bench.inference_server --model "$MODEL" --device "$DEVICE" \
    --workers 4 --frames 16 --seconds "$SECONDS_EACH" || echo "(3 stopped: $?)"
echo "== 4. decoding on NVDEC"
timeout 60 "$PYTHON" -m bench.decoding --decoder auto --seconds 4 --fps 1 \
    || echo "(4 stopped: $?)"
