#!/usr/bin/env bash
# Installs the Debian 12 packages siamese-xlmr needs to build, test and run its demo.
# Idempotent and quiet when everything is already there. Run as root (or with sudo).
set -euo pipefail

packages=(
  # toolchain
  g++ make cmake ninja-build pkg-config git
  # libraries (found by CMake, never vendored)
  libtorch-dev libopenmpi-dev openmpi-bin libsentencepiece-dev libyaml-cpp-dev libspdlog-dev
  libhdf5-dev libgtest-dev nlohmann-json3-dev libcli11-dev libutf8proc-dev libxxhash-dev
  # the demo's tokenizer is trained with spm_train
  sentencepiece
  # the Slurm test starts a real Slurm (22.05) on this machine
  slurmctld slurmd slurm-client munge
  # the cluster tests make hosts in network namespaces (ip, tc; nsenter and unshare come with
  # util-linux, which every Debian has)
  iproute2
  # the fuzzers (tools/fuzz.sh): clang with libFuzzer and the sanitizers' runtimes
  clang libclang-rt-14-dev
  # benchmarks against the notebook's Python way, plots and feature checks
  python3 python3-sentencepiece python3-matplotlib python3-sklearn python3-h5py python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
