#!/usr/bin/env bash
# Every figure and check that needs a GPU, in one run, each step's output in its own file:
#   benchmarks/gpu_figures.sh [FOLDER]     (default ./gpu-figures; PYTHON picks the interpreter)
# It needs a Python with torch built for CUDA, numpy, pytest, pyyaml and rich; it installs nothing,
# so it runs on a machine that reaches no network. Each step has its own time limit, and a step that
# fails or runs out of time does not stop the next. At most 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
FOLDER=${1:-gpu-figures}
PYTHON=${PYTHON:-python3}
mkdir -p "$FOLDER"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

step() {  # step NAME SECONDS COMMAND...
    local name=$1 seconds=$2
    shift 2
    echo "== $name (at most $seconds s)"
    local began=$SECONDS
    timeout "$seconds" "$@" > "$FOLDER/$name.txt" 2>&1
    local code=$?
    tail -n 15 "$FOLDER/$name.txt"
    echo "== $name: exit $code after $((SECONDS - began)) s"
    [ "$code" -eq 0 ] || status=1
}

step device 30 bash -c "nvidia-smi; $PYTHON -c 'import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))'"
# DeepConvNet on the course's layers against torch.nn (budget 0.8x), then the time to the synthetic target.
step deep_convnet 200 "$PYTHON" benchmarks/bench_deep_convnet.py --device cuda
step resnet 100 "$PYTHON" benchmarks/bench_resnet.py --device cuda
step data 60 "$PYTHON" benchmarks/bench_data.py --runs 3
# The tests that run on the GPU where there is one: the reference's layers on it, a2's training tasks.
step gpu_layers 60 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_reference_a2.py -k cuda
step gpu_training 150 "$PYTHON" -m pytest -q -x -p no:cacheprovider tests/test_training_a2.py
exit $status
