#!/usr/bin/env bash
# Which scenarios the shipped policy's rules alert on, without the model:
#
#   models/scenarios/rules-check.sh [NAME ...]        (default: every scenario; needs root)
#
# Starts one vigil (`--no-model`, the shipped policy in monitor mode, so nothing is acted on)
# and runs each scenario's setup, run and teardown under it, then prints, per scenario, the
# rule incidents raised while its `run` ran. The scenarios write persistence and log
# tampering into a fake root under their work dir (see README.md, "Safety rules"), so a
# drop-in adds a copy of every shipped file rule with its paths under each scenario's
# `$VIGIL_SCENARIO_TMP/<name>/root`; those hits are reported with the suffix `@fake-root`.
# Environment: VIGIL (default <repo>/target/release/vigil), VIGIL_SCENARIO_TMP.
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
VIGIL=${VIGIL:-$REPO/target/release/vigil}
TMP=${VIGIL_SCENARIO_TMP:-/tmp/vigil-scenarios}
WORK=$(mktemp -d /tmp/vigil-rules-check.XXXXXX)
mkdir -p "$WORK/policy.d" "$WORK/state"

if (($#)); then
    scripts=()
    for n in "$@"; do
        found=("$HERE"/{malicious,benign}/"$n".sh)
        for s in "${found[@]}"; do [[ -f $s ]] && scripts+=("$s"); done
    done
else
    scripts=("$HERE"/malicious/*.sh "$HERE"/benign/*.sh)
fi

echo 'mode = "monitor"' >"$WORK/policy.d/00-monitor.toml"
python3 - "$REPO/packaging/policy.toml" "$TMP" "$WORK/policy.d/50-fake-root.toml" "${scripts[@]}" <<'PY'
import os, re, sys
policy, tmp, out, scripts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
text = open(policy).read()
tables = re.findall(r'\[\[rule\.file\]\]\n(?:(?![\[#\n]).*\n)*', text)
rules = []
for script in scripts:
    name = os.path.basename(script)[:-3]
    root = f'{tmp}/{name}/root'
    for t in tables:
        t = re.sub(r'name = "([^"]+)"', rf'name = "\1@fake-root:{name}"', t)
        t = re.sub(r'path = \[(.*?)\]',
                   lambda m: 'path = [' + re.sub(r'"(/[^"]*)"', lambda q: f'"{root}{q.group(1)}"', m.group(1)) + ']',
                   t, flags=re.S)
        rules.append(t)
open(out, 'w').write('\n'.join(rules))
PY

"$VIGIL" run --no-model --policy "$REPO/packaging/policy.toml" --policy-dir "$WORK/policy.d" \
    --state-dir "$WORK/state" --control-socket "$WORK/control.sock" --ready-line \
    >"$WORK/vigil.out" 2>"$WORK/vigil.log" &
vigil_pid=$!
trap 'kill $vigil_pid 2>/dev/null; wait $vigil_pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q ready "$WORK/vigil.out" && break; sleep 0.2; done
grep -q ready "$WORK/vigil.out" || { cat "$WORK/vigil.log" >&2; exit 1; }

: >"$WORK/runs"
for s in "${scripts[@]}"; do
    label=$(basename "$(dirname "$s")") name=$(basename "$s" .sh)
    bash "$s" setup >"$WORK/$name.setup.log" 2>&1 || echo "$label/$name: setup failed (see $WORK)" >&2
    start=$(date -u +%Y-%m-%dT%H:%M:%S.%6N)
    rc=0; timeout 300 bash "$s" run >"$WORK/$name.run.log" 2>&1 || rc=$?
    sleep 1   # let the last records reach user space
    end=$(date -u +%Y-%m-%dT%H:%M:%S.%6N)
    bash "$s" teardown >/dev/null 2>&1 || true
    echo "$label/$name $start $end $rc" >>"$WORK/runs"
done

python3 - "$WORK/runs" "$WORK/vigil.log" <<'PY'
import re, sys
runs = [l.split() for l in open(sys.argv[1])]
ansi = re.compile(r'\x1b\[[0-9;]*m')
hits = {r[0]: {} for r in runs}
for line in open(sys.argv[2], errors='replace'):
    m = re.match(r'(\S+)Z\s+\w+\s+\S+ vigil: (?:alert on|killed|quarantined) .*? by ([^\s:]+)', ansi.sub('', line))
    if not m:
        continue
    ts, rule = m.group(1)[:26], re.sub(r':[a-z_]+$', '', m.group(2))
    for name, start, end, _ in runs:
        if start <= ts <= end:
            hits[name][rule] = hits[name].get(rule, 0) + 1
print(f"{'scenario':<34} {'rc':>3}  rule incidents during run")
for name, _, _, rc in runs:
    found = ', '.join(f'{r} x{n}' for r, n in sorted(hits[name].items())) or '-'
    print(f'{name:<34} {rc:>3}  {found}')
PY
echo "logs: $WORK"
