#!/usr/bin/env bash
# The GPU check: the guide's network and a 784-256-10 network, with Keras on jax and on torch,
# computing on the GPU. Run from the repository root on a machine with an NVIDIA GPU, jax, torch
# and Keras; reports go to $OUT (default ./gpu-out). Results are recorded in docs/gpu.md.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
KERAS_BACKEND=jax python3 -c "import jax, torch, numpy, keras; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.get_device_name(0)); print('numpy', numpy.__version__, 'keras', keras.__version__)"
for b in jax torch; do
  echo "== $b: the guide's network, exact referee"
  python3 -m compare --backend "$b" --referee exact --json "$OUT/guide-$b.json"; echo "exit $?"
  echo "== $b: guide_as_written, exact referee"
  python3 -m compare --backend "$b" --impl numpy_impl:guide_as_written --referee exact \
    --json "$OUT/guide-as-written-$b.json"; echo "exit $?"
  echo "== $b: 784-256-10, relu/softmax, categorical cross-entropy, Adam, finite-difference referee"
  python3 -m compare --backend "$b" --data random --layers 784,256,10 --activations relu,softmax \
    --loss categorical_crossentropy --optimizer adam --steps 100 --referee finite_differences \
    --json "$OUT/784-256-10-$b.json"; echo "exit $?"
done
