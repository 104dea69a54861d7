#!/usr/bin/env bash
# Run HERE (Debian, with network to the package mirror) before a GPU check: the GPU machine
# has no network and may lack some libraries. This fetches Debian's packages of those into
# .gpu-deps/debs (git-ignored), copies the fixtures into .fixtures and the PyTorch reference
# benchmark into .bench (both git-ignored); carry all three
# (`carry: [".gpu-deps", ".fixtures", ".bench"]`). gpu-env.sh unpacks only what the machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps/debs
(cd .gpu-deps/debs && apt-get download -qq libcli11-dev nlohmann-json3-dev libutf8proc-dev libutf8proc2 \
  libgtest-dev libsentencepiece-dev libsentencepiece0 libxxhash-dev 2>/dev/null)
rm -rf .fixtures && cp -r ../shared/fixtures .fixtures && chmod -R u+w .fixtures
rm -rf .bench && cp -r ../shared/bench .bench && chmod -R u+w .bench
du -sh .gpu-deps .fixtures .bench
