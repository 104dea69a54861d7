#!/usr/bin/env bash
# The second toolchain: a git-ignored venv (.venv, or $SX_VENV) with the pinned PyPI packages of
# launch/requirements-py.txt: torch 2.x with CUDA 13 (its libtorch and CMake files serve the
# CUDA build, build-cuda/), transformers, sentence-transformers, tokenizers, safetensors, numpy.
# Idempotent: when the venv already holds exactly these pins it returns at once. Needs Debian's
# python3-venv (launch/install-deps.sh) and the PyPI registry. Prints the venv's path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SX_VENV:-$PWD/.venv}
requirements=$PWD/launch/requirements-py.txt
want=$(sha256sum "$requirements" | cut -d' ' -f1)
stamp=$venv/.sx-requirements.sha256

# One installer at a time (the test command and a developer's shell may race).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "$venv"
  exit 0
fi

# Debian's interpreter (the one python3-venv belongs to), not one earlier on PATH.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
if [ ! -x "$venv/bin/python" ]; then
  echo "install-py-deps: creating $venv" >&2
  "$python" -m venv "$venv"
fi
echo "install-py-deps: installing launch/requirements-py.txt into $venv (a few GB the first time)" >&2
start=$(date +%s)
# --no-cache-dir: the wheels (torch and its CUDA libraries, ~3.5 GB) are unpacked once, not
# also kept in ~/.cache.
"$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check \
  --upgrade-strategy only-if-needed -r "$requirements" >&2
"$venv/bin/python" - <<'PY' >&2
import torch, transformers, sentence_transformers, tokenizers, safetensors, numpy
print(f"install-py-deps: torch {torch.__version__} (CUDA {torch.version.cuda}), transformers "
      f"{transformers.__version__}, sentence-transformers {sentence_transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, numpy {numpy.__version__}")
PY
echo "$want" >"$stamp"
echo "install-py-deps: done in $(( $(date +%s) - start )) s" >&2
echo "$venv"
