#!/usr/bin/env bash
# Downloads the wheels that benchmarks/gpu_check.py needs beyond what the lent
# GPU machine has (NVIDIA H200 image: CPython 3.12, jax 0.11 with its CUDA 13
# plugin, torch 2.11, transformers 5.17, numpy, absl-py, rich, h5py, ml-dtypes,
# packaging, etils, protobuf, cloudpickle, opencv-python-headless, safetensors,
# huggingface-hub, matplotlib, tqdm, regex, typing-extensions, psutil): keras,
# keras-hub, grain, PyAV and their dependencies missing there, as manylinux
# x86_64 wheels for CPython 3.12, into .whl/ (git-ignored). Checks that they
# total under 48 MiB (the working tree and the wheels travel together, 64 MiB
# at most) and prints the install command the check's run starts with.
#
#   bash scripts/gpu_wheels.sh            # then carry .whl with the run
#
# The versions are the ones the test suite runs with; each depends only on
# packages of that machine at the versions it has (keras 3.15 supports jax 0.11
# and torch 2.11; nothing here needs a newer jax, torch or transformers).
# keras-hub's other requirements: sentencepiece and tokenizers are on that
# machine; kagglehub and tensorflow-text are left out (keras-hub imports them
# only when present, and keras-har needs neither). Checked by installing these
# wheels with --no-deps beside those packages into a CPython 3.12 environment
# and importing keras, keras_hub, grain, av and keras_har's models.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${GPU_WHEELS_DIR:-.whl}
LIMIT_MIB=48
PYTHON=${PYTHON:-python3}
WHEELS=(
  keras==3.15.1 namex==0.1.0 optree==0.20.0     # keras and the two it needs beyond the image
  keras-hub==0.32.0
  grain==0.2.18 array-record==0.8.6 portpicker==1.6.0
  av==18.1.0
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
           manylinux1_x86_64; do
  PLATFORMS+=(--platform "$tag")
done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d "$DEST" "${WHEELS[@]}" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

count=$(ls "$DEST"/*.whl | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
  echo "error: $DEST holds $count wheels, expected ${#WHEELS[@]} (one per pin)" >&2
  exit 1
fi
bytes=$(cat "$DEST"/*.whl | wc -c)
mib=$(( (bytes + 1048575) / 1048576 ))
ls -l "$DEST"/*.whl | awk '{printf "%9d  %s\n", $5, $NF}'
if [ "$bytes" -ge $(( LIMIT_MIB * 1048576 )) ]; then
  echo "error: the wheels in $DEST total $mib MiB, over the $LIMIT_MIB MiB limit" >&2
  exit 1
fi
echo "$count wheels, $mib MiB (limit $LIMIT_MIB MiB) in $DEST. The GPU run starts with:"
echo "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $DEST/*.whl && export PYTHONPATH=\$PWD:/tmp/site || exit;"
