# Sourced by the scripts: make .venv with portd and its dev tools, from nothing, idempotently.
# Versions are pinned by constraints.txt so every machine tests the same thing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      # The real interpreter, not a pyenv shim: a shim adds ~100 ms to every sidecar spawn.
      "$candidate" -c 'import sys; print(sys.executable)'
      return
    fi
  done
  echo "portd needs Python 3.11 or newer" >&2
  exit 1
}

setup_python() {
  local stamp="$VENV/.portd-installed"
  if [ ! -x "$PY" ]; then
    say "creating .venv"
    "$(find_python)" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/constraints.txt" -nt "$stamp" ]; then
    say "installing portd and its tools into .venv"
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$PY" -m pip install --quiet --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[dev,etcd]"
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}
