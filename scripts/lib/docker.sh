# Sourced by scripts/build-image and scripts/test: Docker for kafkalike's compose backend.
#   ensure_docker_packages    apt-get install docker.io, docker-compose, debootstrap if missing
#   ensure_dockerd            start dockerd in the background unless one answers already
#   release_dockerd           at exit: stop the dockerd we started, unless others still use it
#   stop_dockerd              stop the dockerd these scripts started (its pid file), now
#   stop_dockerd_if_unused    the same, unless another run holds the lock
#
# Who stops dockerd: every user (scripts/test, scripts/build-image) holds a shared flock on
# .kafkalike/docker/users.lock while it runs. The one that started dockerd writes its pid to
# .kafkalike/docker/dockerd.pid; on release, whoever can then take the lock exclusively (the
# last user out) stops that pid, so a test run never loses the daemon under a parallel one.
# A dockerd that was already running when we came (not ours: no pid file) is left alone, and
# so is one started by scripts/build-image (marked .kafkalike/docker/dockerd.keep: a compose
# user wants it to stay up) until `./scripts/build-image --stop-dockerd`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

DOCKER_STATE="$ROOT/.kafkalike/docker"
DOCKERD_PIDFILE="$DOCKER_STATE/dockerd.pid"
# Debian's client matches Debian's daemon (a newer client on PATH may want buildx)
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}"
export DOCKER

ensure_docker_packages() {
    ensure_debian_packages docker.io docker-compose debootstrap
}

docker_answers() {
    timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_docker_lock() {
    mkdir -p "$DOCKER_STATE"
    # a script run by another holder of the lock inherits its fd (and its lock): reuse it
    if [ -z "${KAFKALIKE_DOCKER_LOCK_FD:-}" ]; then
        exec {KAFKALIKE_DOCKER_LOCK_FD}>"$DOCKER_STATE/users.lock"
        export KAFKALIKE_DOCKER_LOCK_FD
        _docker_lock_owner=1
    fi
}

# ensure_dockerd [keep]: "keep" marks a dockerd started here as one to leave running
ensure_dockerd() {
    _docker_lock
    flock -s "$KAFKALIKE_DOCKER_LOCK_FD"
    if docker_answers; then
        return 0
    fi
    command -v dockerd >/dev/null 2>&1 || { echo "docker: dockerd is not installed" >&2; return 1; }
    # a starter that died may have left its pid behind: only a live dockerd counts
    if [ -f "$DOCKERD_PIDFILE" ] && ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
        rm -f "$DOCKERD_PIDFILE"
    fi
    echo "docker: starting dockerd (log: $DOCKER_STATE/dockerd.log)" >&2
    # own session, no terminal, and without our lock fd (it must not keep the lock alive)
    setsid dockerd >"$DOCKER_STATE/dockerd.log" 2>&1 </dev/null {KAFKALIKE_DOCKER_LOCK_FD}>&- &
    echo $! >"$DOCKERD_PIDFILE"
    if [ "${1:-}" = keep ]; then touch "$DOCKER_STATE/dockerd.keep"; fi
    local i
    for i in $(seq 1 60); do
        if docker_answers; then
            echo "docker: dockerd up (pid $(cat "$DOCKERD_PIDFILE")) after ${i}x0.5s" >&2
            return 0
        fi
        if ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
            break
        fi
        sleep 0.5
    done
    echo "docker: dockerd did not come up; last lines of its log:" >&2
    tail -n 15 "$DOCKER_STATE/dockerd.log" >&2 || true
    stop_dockerd
    return 1
}

# Stop the dockerd whose pid we recorded (SIGTERM, then SIGKILL after 30 s); no-op without one.
stop_dockerd() {
    [ -f "$DOCKERD_PIDFILE" ] || return 0
    local pid
    pid="$(cat "$DOCKERD_PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
        echo "docker: stopping dockerd (pid $pid)" >&2
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DOCKERD_PIDFILE" "$DOCKER_STATE/dockerd.keep"
}

# `scripts/build-image --stop-dockerd`: stop our dockerd unless a test run still uses it.
stop_dockerd_if_unused() {
    _docker_lock
    if ! flock -xn "$KAFKALIKE_DOCKER_LOCK_FD"; then
        echo "docker: dockerd is in use by a running ./scripts/test or build-image; not stopped" >&2
        return 1
    fi
    stop_dockerd
    flock -u "$KAFKALIKE_DOCKER_LOCK_FD"
}

release_dockerd() {
    [ "${_docker_lock_owner:-0}" = 1 ] || return 0
    flock -u "$KAFKALIKE_DOCKER_LOCK_FD" || true
    if [ ! -f "$DOCKER_STATE/dockerd.keep" ] && flock -xn "$KAFKALIKE_DOCKER_LOCK_FD"; then
        stop_dockerd
        flock -u "$KAFKALIKE_DOCKER_LOCK_FD" || true
    fi
}

# True when pytest's arguments ("$@") would collect a test that needs containers: no path
# given (the whole suite), or a path that contains tests/chaos/test_chaos_compose.py or
# tests/cluster/test_compose_confluent.py.
wants_compose_tests() {
    local any_path=0 a p target
    for a in "$@"; do
        p="${a%%::*}"
        [ -e "$p" ] || continue
        any_path=1
        p="$(realpath "$p")"
        for target in "$ROOT/tests/chaos/test_chaos_compose.py" "$ROOT/tests/cluster/test_compose_confluent.py"; do
            case "$target" in "$p" | "$p"/*) return 0 ;; esac
        done
    done
    [ "$any_path" = 0 ]
}

# For scripts/test: Docker packages, a dockerd (released at exit by release_dockerd) and the
# image (./scripts/build-image, cached). On failure exports KAFKALIKE_COMPOSE_SKIP with the
# reason, which the compose test reports as its skip reason; never fails itself.
prepare_compose_tests() {
    if [ "${KAFKALIKE_NO_DOCKER:-0}" = 1 ]; then
        export KAFKALIKE_COMPOSE_SKIP="KAFKALIKE_NO_DOCKER=1"
        return 0
    fi
    if ! (cd "$ROOT" && wants_compose_tests "$@"); then
        return 0
    fi
    if ! (ensure_docker_packages); then
        export KAFKALIKE_COMPOSE_SKIP="could not install docker.io/docker-compose/debootstrap with apt-get"
        return 0
    fi
    if ! ensure_dockerd; then
        export KAFKALIKE_COMPOSE_SKIP="dockerd could not start on this machine (see $DOCKER_STATE/dockerd.log)"
        return 0
    fi
    if ! timeout 1200 "$ROOT/scripts/build-image" >"$DOCKER_STATE/build-image.log" 2>&1; then
        export KAFKALIKE_COMPOSE_SKIP="./scripts/build-image failed (see $DOCKER_STATE/build-image.log)"
        return 0
    fi
    tail -n 1 "$DOCKER_STATE/build-image.log" >&2
}
