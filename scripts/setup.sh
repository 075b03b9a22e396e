#!/usr/bin/env bash
# Creates a virtual environment and installs the kit with every extra the tests use, at the exact
# versions CI uses (constraints*.txt; pyproject.toml holds the ranges). Idempotent.
#
#   PYTHON=python3.12      the interpreter; default: the first of python3.11, python3.12, python3.13,
#                          python3 that is >= 3.11 and < 3.14
#   TORCH_INDEX_URL=URL    install torch from this index first. On a stock Linux machine PyPI's torch
#                          is the multi-GB CUDA build; https://download.pytorch.org/whl/cpu has the CPU one.
#   KIT_TRANSFORMERS=5     the transformers 5 environment (extra dev-transformers5: no optimum, no
#                          TensorFlow; constraints-transformers5.txt) in .venv-transformers5
#   KIT_VENV=DIR           where the environment goes (default .venv, or .venv-transformers5)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${KIT_TRANSFORMERS:-4}" in
  4) venv="${KIT_VENV:-.venv}"; extras=dev; constraints=constraints.txt ;;
  5) venv="${KIT_VENV:-.venv-transformers5}"; extras=dev-transformers5; constraints=constraints-transformers5.txt ;;
  *) echo "scripts/setup.sh: KIT_TRANSFORMERS=${KIT_TRANSFORMERS} is not supported; allowed: 4, 5" >&2; exit 2 ;;
esac

supported() {  # is $1 a Python >= 3.11, < 3.14 that runs?
  "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))' >/dev/null 2>&1
}

if [ ! -x "$venv/bin/python" ]; then
  if [ -n "${PYTHON:-}" ]; then
    if ! supported "$PYTHON"; then
      echo "scripts/setup.sh: PYTHON=$PYTHON is not a Python >= 3.11, < 3.14 that runs" >&2
      exit 2
    fi
    py="$PYTHON"
  else
    py=""
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then py="$candidate"; break; fi
    done
    if [ -z "$py" ]; then
      echo "scripts/setup.sh: no Python >= 3.11, < 3.14 found (tried python3.11, python3.12, python3.13," \
           "python3); install one, or name it with PYTHON=/path/to/python3.x" >&2
      exit 2
    fi
  fi
  echo "scripts/setup.sh: creating $venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  # torch (and what it needs) from the given index, at the constrained version; the rest from PyPI.
  "${pip[@]}" install -q -c "$constraints" --index-url "$TORCH_INDEX_URL" torch
fi
"${pip[@]}" install -q -c "$constraints" -e ".[$extras]"
