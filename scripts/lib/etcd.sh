# Sourced by the scripts: an etcd for the etcd registry's tests and benchmarks (docs/etcd.md).
#
#   ensure_etcd        installs etcd (Debian's etcd-server, with apt-get) unless `etcd` is on
#                      the PATH already; quiet, and a no-op the second time
#   start_etcd DIR     starts a one-member etcd on 127.0.0.1 with free client and peer ports,
#                      its data in DIR/data and its log in DIR/etcd.log, waits until it is
#                      healthy and prints "PID CLIENT_PORT" (endpoint http://127.0.0.1:PORT)
#   stop_etcd PID      ends it by its pid and waits for it to go
#
# Note: on a machine with systemd, Debian's package also enables a system-wide etcd service
# on the default ports (2379, 2380); the one start_etcd starts never uses those.

ensure_etcd() {
  if command -v etcd >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "etcd is not installed, and there is no apt-get to install it with:" \
      "install etcd (>= 3.4) so that \`etcd\` is on the PATH" >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "etcd is not installed; installing it needs root: sudo apt-get install etcd-server" >&2
      return 1
    fi
    sudo=(sudo -n)
  fi
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/portd-etcd-apt.XXXXXX")"
  printf '\033[1m==> %s\033[0m\n' "installing etcd-server (apt-get)" >&2
  # The package lists may be missing or stale (a fresh container): update once and retry.
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq etcd-server \
      >"$log" 2>&1; then
    if ! { DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq etcd-server; } \
        >>"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "installing etcd-server failed (the whole log: $log)" >&2
      return 1
    fi
  fi
  rm -f "$log"
  command -v etcd >/dev/null 2>&1 || { echo "etcd-server installed no \`etcd\` on PATH" >&2; return 1; }
}

_etcd_python() {
  if [ -n "${PY:-}" ] && [ -x "$PY" ]; then echo "$PY"; else command -v python3; fi
}

start_etcd() {
  local dir="${1:?start_etcd DIR}" py client peer pid
  py="$(_etcd_python)"
  mkdir -p "$dir"
  # Two free ports on loopback: bound to port 0, the kernel picks; etcd binds them next.
  read -r client peer < <("$py" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)
  etcd --name default --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" \
    --logger zap --log-level warn </dev/null >"$dir/etcd.log" 2>&1 &
  pid=$!
  if ! "$py" - "$client" "$pid" <<'PY'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            if b'"true"' in answer.read():
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)  # it died: the log says why
    time.sleep(0.05)
sys.exit(1)
PY
  then
    tail -n 20 "$dir/etcd.log" >&2
    kill -9 "$pid" 2>/dev/null || true
    echo "etcd did not become healthy on 127.0.0.1:$client (log: $dir/etcd.log)" >&2
    return 1
  fi
  echo "$pid $client"
}

stop_etcd() {
  local pid="${1:?stop_etcd PID}" i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}
