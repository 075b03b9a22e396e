#!/usr/bin/env bash
# Fetches a Kotlin compiler for tests/android_demo/test_kotlin_app.py, which type-checks the demo
# app's Kotlin (android_demo/app/src) against API stubs. No Kotlin distribution or Maven repository
# is reachable where the kit is developed; PyPI's kotlin-jupyter-kernel wheel carries a complete
# Kotlin compiler (kotlinc-jvm 2.4.0-dev) and stdlib in its jars. Prints the directory it unpacked.
# Idempotent: a second run reuses the unpacked jars.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.19.0.944
dest="${KIT_KOTLIN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bert-mobile-kit/kotlin-jupyter-kernel-$version}"
if ! ls "$dest"/jars/kotlin-jupyter-kernel-*-all.jar >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: "kotlin-jupyter-kernel==$version" -d "$tmp" >&2
    mkdir -p "$dest.partial"
    .venv/bin/python - "$tmp" "$dest.partial" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
out = pathlib.Path(sys.argv[2]) / "jars"
out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("run_kotlin_kernel/jars/") and name.endswith(".jar"):
            (out / pathlib.Path(name).name).write_bytes(z.read(name))
PY
    rm -rf "$dest" && mv "$dest.partial" "$dest"
fi
echo "$dest"
