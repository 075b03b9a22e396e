#!/usr/bin/env bash
# Set up (idempotent) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and types first: seconds, and a failure here needs no model to explain it.
echo "== ruff check . (rules: pyproject.toml [tool.ruff.lint])"
.venv/bin/python -m ruff check .
echo "== mypy (strict: runtime/, export/config.py, quantize/modes.py; pyproject.toml [tool.mypy])"
.venv/bin/python -m mypy
export USE_TF=0
# tests/android_demo/test_core.py compiles and runs the Android demo's Java core with Debian's JUnit 5
# (it needs a JDK 17: javac and java). Installed with apt-get when missing: as root directly, else
# through sudo when there is one; otherwise say what to install (the test fails under CI=true).
JUNIT=/usr/share/java/junit-platform-console-standalone.jar
if [ ! -f "$JUNIT" ] || ! command -v javac >/dev/null 2>&1; then
    packages="junit5"
    command -v javac >/dev/null 2>&1 || packages="$packages openjdk-17-jdk-headless"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo="none"; fi
    if command -v apt-get >/dev/null 2>&1 && [ "$sudo" != "none" ] \
        && $sudo apt-get update -qq && $sudo apt-get install -y -qq $packages; then
        :
    else
        echo "scripts/test.sh: could not install $packages (needs apt-get and root or passwordless sudo);" \
             "install them by hand: the Java core test fails under CI=true and is skipped otherwise" >&2
    fi
fi
# tests/android_demo/test_kotlin_app.py type-checks the app's Kotlin with a Kotlin compiler taken from
# PyPI (kotlin-jupyter-kernel's jars, ~80 MB, cached in ~/.cache/bert-mobile-kit); fails under CI=true
# when it could not be fetched.
KIT_KOTLIN_HOME=$(bash scripts/kotlin_compiler.sh) && export KIT_KOTLIN_HOME \
    || echo "scripts/test.sh: could not fetch the Kotlin compiler (scripts/kotlin_compiler.sh)" >&2
echo "== pytest (transformers 4.57: .venv, the whole suite)"
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
# The transformers 5 leg: the fast tests and the core end-to-end ones (marker "core": pipeline,
# mask fill, dynamo ONNX, TFLite, QAT, integer-only) in .venv-transformers5 (no optimum, no TF).
# Arguments narrow the first leg only; KIT_TRANSFORMERS5=0 skips this one.
if [ $# -eq 0 ] && [ "${KIT_TRANSFORMERS5:-1}" != 0 ]; then
    echo "== setup .venv-transformers5 (KIT_TRANSFORMERS=5 scripts/setup.sh)"
    KIT_TRANSFORMERS=5 bash scripts/setup.sh
    echo "== pytest (transformers 5: .venv-transformers5, -m 'not slow or core')"
    .venv-transformers5/bin/python -m pytest -q -p no:cacheprovider -m "not slow or core" || status=$?
elif [ $# -ne 0 ]; then
    echo "== transformers 5 leg not run: arguments were given (run 'bash scripts/test.sh' for both legs)"
fi
exit "$status"
