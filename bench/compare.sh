#!/usr/bin/env bash
# bench/compare.sh REV [ROUNDS [ROW ...]]: is this checkout slower than commit REV?
# Builds REV in a throwaway worktree, then runs REV's benchmarks and this
# checkout's in turn, ROUNDS times (3), so that both see the same noise;
# prints, per row, the median ratio of each side and its spread (min..max);
# rows are matched by name, a row only one side has shows "-" on the other.
# Each side runs its own bench/run.sh, schema and module.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REV=${1:?usage: bench/compare.sh REV [ROUNDS]}
ROUNDS=${2:-3}
[ $# -ge 2 ] || set -- "$REV" "$ROUNDS"
OUT=$(mktemp -d /tmp/crm-compare-XXXX)
OLD="$OUT/tree"

cleanup() { git -C "$ROOT" worktree remove --force "$OLD" 2>/dev/null || true; }
trap cleanup EXIT

git -C "$ROOT" worktree add --detach "$OLD" "$REV" >/dev/null 2>&1
"$OLD/config.sh" build >"$OUT/build-old.log" 2>&1
"$ROOT/config.sh" build >"$OUT/build-new.log" 2>&1

for i in $(seq "$ROUNDS"); do
    echo "compare: round $i of $ROUNDS" >&2
    CRM_BENCH_ROUNDS=1 CRM_BENCH_JSON="$OUT/old-$i.json" "$OLD/bench/run.sh" "${@:3}" \
        >"$OUT/old-$i.txt" 2>"$OUT/old-$i.err"
    CRM_BENCH_ROUNDS=1 CRM_BENCH_JSON="$OUT/new-$i.json" "$ROOT/bench/run.sh" "${@:3}" \
        >"$OUT/new-$i.txt" 2>"$OUT/new-$i.err"
done

python3 - "$OUT" "$ROUNDS" "$REV" <<'PY'
import json, os, statistics, sys

out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]

# rows by their stable name (CRM_BENCH_JSON); a side whose run.sh predates
# it has no JSON and shows "-"
side = {}
for s in ('old', 'new'):
    for i in range(1, rounds + 1):
        path = '%s/%s-%d.json' % (out, s, i)
        if not os.path.exists(path):
            continue
        for line in open(path):
            r = json.loads(line)
            side.setdefault(r['name'], {'old': [], 'new': [], 'goal': r['goal']})
            side[r['name']][s].append(r['ratio'])

def show(v):
    if not v:
        return '-'
    return '%.3f (%.3f..%.3f)' % (statistics.median(v), min(v), max(v))

print('| %-16s | %-22s | %-22s | %-6s |' % ('row (ratio; latency: ms added)'[:16],
                                          rev[:12], 'this checkout', 'goal'))
print('|%s|%s|%s|%s|' % ('-' * 18, '-' * 24, '-' * 24, '-' * 8))
for name, v in side.items():
    print('| %-16s | %-22s | %-22s | %-6s |'
          % (name, show(v['old']), show(v['new']), v['goal']))
print('\n%d rounds, interleaved; raw runs in %s' % (rounds, out))
PY
