#!/usr/bin/env bash
# fuzz-run.sh TARGET SECONDS: run build/fuzz/fuzz_TARGET for SECONDS from its seeds
# (test/fuzz/corpus/TARGET, read only) and what earlier runs found (build/fuzz/corpus/TARGET).
# Exit non-zero on a crash, a leak, a timeout (an input taking over 10 s) or an
# out-of-memory; the input is then under build/fuzz/crashes/, to be fixed and kept as
# test/fuzz/regress/TARGET/<name> (`make test` replays it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=$1
seconds=$2
bin=build/fuzz/fuzz_$target
work=build/fuzz/corpus/$target
crashes=build/fuzz/crashes
mkdir -p "$work" "$crashes"
log=build/fuzz/$target.log

echo "== fuzz $target for ${seconds}s"
rc=0
# -jobs is not used: two targets at once (make -j2) is what CI's 2 cores give.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=1 \
	-artifact_prefix="$crashes/$target-" -print_final_stats=1 \
	"$work" "test/fuzz/corpus/$target" >"$log" 2>&1 || rc=$?
tail -n 15 "$log"
if [ "$rc" -ne 0 ]; then
	echo "== fuzz $target: FAILED (exit $rc); full log $log; inputs:" >&2
	ls -1 "$crashes"/"$target"-* >&2 2>/dev/null || true
	exit 1
fi
echo "== fuzz $target: ok"
