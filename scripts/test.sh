#!/usr/bin/env bash
# Set up (idempotent) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export USE_TF=0
# tests/test_android_core.py compiles and runs the Android demo's Java core with Debian's JUnit 5.
if [ ! -f /usr/share/java/junit-platform-console-standalone.jar ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq junit5
fi
.venv/bin/python -m pytest -q "$@"
