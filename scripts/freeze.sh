#!/usr/bin/env bash
# Rewrites constraints.txt (or, with KIT_TRANSFORMERS=5, constraints-transformers5.txt) from the
# environment scripts/setup.sh made: after raising a range in pyproject.toml, install the new
# version there, run the tests, then freeze.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${KIT_TRANSFORMERS:-4}" in
  4) venv="${KIT_VENV:-.venv}"; out=constraints.txt; extras=dev ;;
  5) venv="${KIT_VENV:-.venv-transformers5}"; out=constraints-transformers5.txt; extras=dev-transformers5 ;;
  *) echo "scripts/freeze.sh: KIT_TRANSFORMERS=${KIT_TRANSFORMERS} is not supported; allowed: 4, 5" >&2; exit 2 ;;
esac
version=$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')
{
  echo "# Exact versions CI installs (scripts/setup.sh: pip install -c $out -e '.[$extras]'): pip freeze"
  echo "# of $venv, Python $version, $(date -u +%Y-%m-%d). pyproject.toml keeps the ranges. Regenerate: scripts/freeze.sh"
  # torch's local version (+cpu) names the index it came from, not a different release.
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^-e ' | sed 's/+cpu$//'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)"
