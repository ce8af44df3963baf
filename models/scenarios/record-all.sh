#!/usr/bin/env bash
# Record every scenario (or a chosen subset) with `vigil record`:
#
#   models/scenarios/record-all.sh [--repeat N] [--list] [--dry-run] [NAME ...]
#
# For each scenario: `setup` (not recorded), then
#   "$VIGIL" record --out "$OUT/<label>-<name>.vds" --label <label> --family <name> \
#       --scenario <name> --timeout 60 -- bash <script> run
# then `teardown`, always (trap), even when setup or the recording fails.
# With --repeat N each scenario is recorded N times, setup/run/teardown each time, into
# <label>-<name>-<i>.vds (the scripts randomise file counts, ports and timing between runs).
#
# Environment: VIGIL (default <repo>/target/release/vigil), OUT (default <repo>/models/data/raw),
# VIGIL_SCENARIO_TMP (scenario work dirs, default /tmp/vigil-scenarios).
# Per-scenario logs of setup/record/teardown go to $OUT/logs/. Needs root.
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
VIGIL=${VIGIL:-$REPO/target/release/vigil}
OUT=${OUT:-$REPO/models/data/raw}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

repeat=""
list=0
dry=0
names=()
while (($#)); do
    case $1 in
        --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
        --repeat=*) repeat=${1#*=}; shift ;;
        --list) list=1; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; names+=("$@"); break ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) names+=("$1"); shift ;;
    esac
done
if [[ -n $repeat ]] && ! [[ $repeat =~ ^[1-9][0-9]*$ ]]; then
    echo "--repeat needs a positive integer, got '$repeat'" >&2
    exit 2
fi

# Discover scenarios: <label>/<name>.sh under this directory.
declare -A label_of=() script_of=()
all=()
for label in benign malicious; do
    for f in "$HERE/$label"/*.sh; do
        [[ -e $f ]] || continue
        n=$(basename "$f" .sh)
        label_of[$n]=$label
        script_of[$n]=$f
        all+=("$n")
    done
done

if ((list)); then
    for n in "${all[@]}"; do printf '%-10s %s\n' "${label_of[$n]}" "$n"; done
    exit 0
fi

if ((${#names[@]} == 0)); then
    names=("${all[@]}")
else
    for n in "${names[@]}"; do
        [[ -n ${script_of[$n]:-} ]] || { echo "unknown scenario '$n' (try --list)" >&2; exit 2; }
    done
fi

if ((!dry)); then
    [[ $(id -u) -eq 0 ]] || { echo "record-all.sh must run as root (vigil loads eBPF programs)" >&2; exit 1; }
    [[ -x $VIGIL ]] || { echo "vigil binary not found at $VIGIL (set VIGIL=...)" >&2; exit 1; }
    mkdir -p "$OUT/logs"
fi

listeners() { ss -Hltn 2>/dev/null | awk '{print $4}' | sort -u; }

# record_one NAME LABEL SCRIPT BASE: setup, record, teardown (always). Returns non-zero on failure.
record_one() {
    local name=$1 label=$2 script=$3 base=$4 log="$OUT/logs/$4.log" rc=0 t0 before after
    if ((dry)); then
        echo "bash $script setup"
        echo "$VIGIL record --out $OUT/$base.vds --label $label --family $name --scenario $name --timeout 60 -- bash $script run"
        echo "bash $script teardown"
        return 0
    fi
    before=$(listeners)
    t0=$SECONDS
    # Explicit exits: `set -e` does not apply inside a subshell that is tested with `||`.
    (
        trap 'echo "== teardown" >>"$log"; bash "$script" teardown </dev/null >>"$log" 2>&1 || echo "teardown failed" >>"$log"' EXIT
        echo "== setup" >"$log"
        bash "$script" setup </dev/null >>"$log" 2>&1 || { echo "setup failed (rc=$?)" >>"$log"; exit 10; }
        echo "== record" >>"$log"
        "$VIGIL" record --out "$OUT/$base.vds" --label "$label" --family "$name" --scenario "$name" \
            --timeout 60 -- bash "$script" run </dev/null >>"$log" 2>&1 || { r=$?; echo "record failed (rc=$r)" >>"$log"; exit "$r"; }
    ) || rc=$?
    after=$(listeners)
    if [[ $before != "$after" ]]; then
        echo "warning: listening sockets changed across $base:" >&2
        diff <(echo "$before") <(echo "$after") >&2 || true
    fi
    printf '%-40s %s (%ds)\n' "$base" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED rc=$rc, see $log")" $((SECONDS - t0))
    return "$rc"
}

failed=()
interrupted=0
trap 'interrupted=1' INT TERM
for n in "${names[@]}"; do
    label=${label_of[$n]}
    script=${script_of[$n]}
    if [[ -z $repeat ]]; then
        record_one "$n" "$label" "$script" "$label-$n" || failed+=("$label-$n")
    else
        for ((i = 1; i <= repeat; i++)); do
            record_one "$n" "$label" "$script" "$label-$n-$i" || failed+=("$label-$n-$i")
            ((interrupted)) && break
        done
    fi
    ((interrupted)) && { echo "interrupted" >&2; break; }
done

if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
((interrupted)) && exit 130
exit 0
