# shellcheck shell=bash
# Shared helpers for vigil's recording scenarios. Sourced by every scenario script:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#   scenario_init <name>
#   do_setup()    { ...; }
#   do_run()      { ...; }
#   do_teardown() { ...; }
#   scenario_main "$@"
#
# Safety rules the helpers help enforce (see README.md):
#   - all writes go under the work dir $W (never the real /etc, ~/.ssh, /var/log, crontabs ...);
#   - network targets are loopback only (127.0.0.1 / ::1);
#   - everything `setup` starts is recorded in a pidfile under $W/pids and killed by `teardown`.

# Interpreter used by the scenarios: the distribution's python, not a pyenv shim (a shim is a
# bash script that execs a dozen helpers first, which would pollute the recorded sequences).
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

SCENARIO_TMP_ROOT=${VIGIL_SCENARIO_TMP:-/tmp/vigil-scenarios}

# scenario_init NAME: sets SCENARIO_NAME and the work dir W (not created here).
scenario_init() {
    SCENARIO_NAME=$1
    W="$SCENARIO_TMP_ROOT/$SCENARIO_NAME"
    PIDDIR="$W/pids"
}

# ensure_workdir: create $W (and the pid dir).
ensure_workdir() {
    mkdir -p "$W" "$PIDDIR"
}

# remove_workdir: delete $W, and the shared tmp root if it is now empty.
remove_workdir() {
    case "$W" in
        "$SCENARIO_TMP_ROOT"/?*) rm -rf -- "$W" ;;
        *) echo "refusing to remove suspicious work dir '$W'" >&2; return 1 ;;
    esac
    rmdir -- "$SCENARIO_TMP_ROOT" 2>/dev/null || true
}

# upto N: print the first N lines of stdin but keep reading to the end, so the producer never
# gets SIGPIPE (which `set -o pipefail` would turn into a failure, unlike `| head -n N`).
upto() { sed -n "1,${1}p"; }

log() { printf '[%s] %s\n' "${SCENARIO_NAME:-scenario}" "$*" >&2; }

# rand_int LO HI: uniform integer in [LO, HI].
rand_int() {
    local lo=$1 hi=$2
    echo $(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
}

# jitter [MAX_MS]: sleep a random 0..MAX_MS milliseconds (default 300), for run-to-run variation.
jitter() {
    local max=${1:-300} ms
    ms=$(rand_int 0 "$max")
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

# need_pkg PKG...: install the Debian packages that are missing (no recommends). `apt-get update`
# runs at most once per call, and only when something is missing and the lists are absent or
# older than a day. Never call this from `run`.
need_pkg() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]})) || return 0
    log "installing: ${missing[*]}"
    local fresh
    fresh=$(find /var/lib/apt/lists -maxdepth 1 -name '*_InRelease' -mmin -1440 2>/dev/null | head -n1)
    if [[ -z $fresh ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends "${missing[@]}" >&2; then
        # Stale lists (a package moved to a new version): refresh once and retry.
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends "${missing[@]}" >&2
    fi
}

# port_open HOST PORT: true if something accepts TCP connections there (loopback only).
port_open() {
    local host=$1 port=$2
    assert_loopback "$host"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# port_listening PORT: true if any local socket listens on TCP PORT (no connection made).
port_listening() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# wait_port HOST PORT [TIMEOUT_S]: wait (bounded) until HOST:PORT accepts connections.
wait_port() {
    local host=$1 port=$2 timeout=${3:-15} i
    for ((i = 0; i < timeout * 10; i++)); do
        if port_listening "$port"; then return 0; fi
        sleep 0.1
    done
    log "timed out waiting for $host:$port"
    return 1
}

# wait_port_closed PORT [TIMEOUT_S]: wait (bounded) until nothing listens on PORT.
wait_port_closed() {
    local port=$1 timeout=${2:-10} i
    for ((i = 0; i < timeout * 10; i++)); do
        port_listening "$port" || return 0
        sleep 0.1
    done
    return 1
}

# free_port LO HI: a random TCP port in [LO, HI] that nothing listens on.
free_port() {
    local lo=$1 hi=$2 p i
    for ((i = 0; i < 200; i++)); do
        p=$(rand_int "$lo" "$hi")
        port_listening "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# assert_loopback ADDR: abort unless ADDR is a loopback address.
assert_loopback() {
    case "$1" in
        127.*|::1|localhost) return 0 ;;
        *) echo "refusing non-loopback target '$1'" >&2; exit 3 ;;
    esac
}

# proc_starttime PID: the process start time (field 22 of /proc/PID/stat), to detect pid reuse.
proc_starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # fields after "comm)": state is field 3 ($1 here), starttime is field 22 ($20 here).
    set -- $stat
    # A zombie has finished: treat it as gone.
    [[ $1 != Z && $1 != X ]] || return 1
    echo "${20}"
}

# start_daemon NAME CMD...: start CMD in a new session (so it outlives `setup` and its whole
# process group can be killed later), detached from stdio, logging to $W/NAME.log; record
# "pid starttime" in $PIDDIR/NAME.pid.
start_daemon() {
    local name=$1; shift
    ensure_workdir
    setsid "$@" </dev/null >"$W/$name.log" 2>&1 &
    local pid=$!
    local st=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do st=$(proc_starttime "$pid") && break; sleep 0.05; done
    echo "$pid $st" >"$PIDDIR/$name.pid"
}

# kill_pidfile FILE: kill the process group recorded in FILE (if the pid still belongs to the
# same process), wait up to 5 s, then SIGKILL; remove FILE.
kill_pidfile() {
    local f=$1 pid st cur i
    [[ -f $f ]] || return 0
    read -r pid st <"$f" || true
    if [[ -n ${pid:-} ]] && cur=$(proc_starttime "$pid") && [[ $cur == "${st:-}" ]]; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            cur=$(proc_starttime "$pid") || break
            [[ $cur == "$st" ]] || break
            sleep 0.1
        done
        if cur=$(proc_starttime "$pid") && [[ $cur == "$st" ]]; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f -- "$f"
}

# kill_all_pidfiles: kill everything started with start_daemon for this scenario.
kill_all_pidfiles() {
    local f
    [[ -d $PIDDIR ]] || return 0
    for f in "$PIDDIR"/*.pid; do
        [[ -e $f ]] && kill_pidfile "$f"
    done
    return 0
}

# kill_children: kill the direct children of this shell that are still alive (used in `run`
# traps so a failed step leaves nothing behind).
kill_children() {
    local pids
    pids=$(jobs -p 2>/dev/null || true)
    [[ -n $pids ]] && kill $pids 2>/dev/null || true
    wait 2>/dev/null || true
}

# scenario_main "$@": dispatch setup | run | teardown to do_setup | do_run | do_teardown.
scenario_main() {
    local cmd=${1:-}
    case "$cmd" in
        setup) ensure_workdir; do_setup ;;
        run)
            [[ -d $W ]] || { echo "work dir $W missing: run '$0 setup' first" >&2; exit 2; }
            do_run ;;
        teardown) do_teardown ;;
        *) echo "usage: $0 setup|run|teardown" >&2; exit 2 ;;
    esac
}

# default_teardown: kill what setup started and remove the work dir.
default_teardown() {
    kill_all_pidfiles
    remove_workdir
}
