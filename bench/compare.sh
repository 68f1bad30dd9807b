#!/usr/bin/env bash
# bench/compare.sh REV [ROUNDS]: is this checkout slower than commit REV?
# Builds REV in a throwaway worktree, then runs REV's benchmarks and this
# checkout's in turn, ROUNDS times (3), so that both see the same noise;
# prints, per row, the median ratio of each side and its spread (min..max);
# rows are matched by name, a row only one side has shows "-" on the other.
# Each side runs its own bench/run.sh, schema and module.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REV=${1:?usage: bench/compare.sh REV [ROUNDS]}
ROUNDS=${2:-3}
OUT=$(mktemp -d /tmp/crm-compare-XXXX)
OLD="$OUT/tree"

cleanup() { git -C "$ROOT" worktree remove --force "$OLD" 2>/dev/null || true; }
trap cleanup EXIT

git -C "$ROOT" worktree add --detach "$OLD" "$REV" >/dev/null 2>&1
"$OLD/config.sh" build >"$OUT/build-old.log" 2>&1
"$ROOT/config.sh" build >"$OUT/build-new.log" 2>&1

for i in $(seq "$ROUNDS"); do
    echo "compare: round $i of $ROUNDS" >&2
    "$OLD/bench/run.sh" >"$OUT/old-$i.txt" 2>"$OUT/old-$i.err"
    "$ROOT/bench/run.sh" >"$OUT/new-$i.txt" 2>"$OUT/new-$i.err"
done

python3 - "$OUT" "$ROUNDS" "$REV" <<'PY'
import re, statistics, sys

out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def rows(path):
    got = []
    for line in open(path):
        f = [x.strip() for x in line.strip().strip('|').split('|')]
        if len(f) != 5 or f[0] in ('benchmark', '') or f[0].startswith('-'):
            continue
        try:
            # numbers in a name vary from run to run: rows are matched by
            # their name without them (a row added between others does not
            # shift the rest)
            got.append((re.sub(r'\d+%? decided', 'N% decided',
                               re.sub(r'\(\d+ from', '(N from', f[0])),
                        float(f[3]), f[4]))
        except ValueError:
            pass
    return got

side = {}
for s in ('old', 'new'):
    for i in range(1, rounds + 1):
        for name, ratio, goal in rows('%s/%s-%d.txt' % (out, s, i)):
            side.setdefault(name, {'old': [], 'new': [], 'goal': goal})
            side[name][s].append(ratio)

def show(v):
    if not v:
        return '-'
    return '%.3f (%.3f..%.3f)' % (statistics.median(v), min(v), max(v))

print('| %-46s | %-22s | %-22s | %-6s |' % ('row (ratio; latency: ms added)',
                                          rev[:12], 'this checkout', 'goal'))
print('|%s|%s|%s|%s|' % ('-' * 48, '-' * 24, '-' * 24, '-' * 8))
for name, v in side.items():
    print('| %-46s | %-22s | %-22s | %-6s |'
          % (name, show(v['old']), show(v['new']), v['goal']))
print('\n%d rounds, interleaved; raw runs in %s' % (rounds, out))
PY
