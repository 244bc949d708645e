#!/usr/bin/env bash
# Run every test: each $UNIT_DIR/unit_* binary (default build/test), then the integration tests
# (arguments go to test/integration/run.py, e.g. a module filter).
# Every part must end its output with `N passed, N failed`; the last line printed
# here is the sum.  Exit status is non-zero if any part failed, crashed or printed
# no such line (such a part adds 1 to the failed total so the sum shows it).
#
#   UNIT_TIMEOUT (s, default 120) and INTEGRATION_TIMEOUT (s, default 1800) bound a hung part.
set -uo pipefail # no -e: one failing part must not hide the others

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
UNIT_DIR=${UNIT_DIR:-build/test}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
INTEGRATION_TIMEOUT=${INTEGRATION_TIMEOUT:-1800}

total_pass=0
total_fail=0
bad_parts=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run_part NAME SECONDS CMD...: run with output shown live and kept, then add its counts.
run_part() {
	local name=$1 limit=$2 rc line
	shift 2
	echo "== $name"
	# --foreground: keep the part in the terminal's process group so Ctrl-C reaches it.
	timeout --foreground --kill-after=10 "$limit" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "== $name: exit $rc and no 'N passed, N failed' line; counted as 1 failed"
		total_fail=$((total_fail + 1))
		bad_parts+=("$name")
		return
	fi
	local p=${line%% passed*} f=${line#*passed, }
	f=${f%% failed}
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
		[ "$rc" -eq 124 ] && echo "== $name: timed out"
		bad_parts+=("$name")
		# A non-zero exit with "0 failed" still has to show in the total.
		[ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
	fi
}

shopt -s nullglob
units=("$UNIT_DIR"/unit_*)
if [ "${#units[@]}" -eq 0 ]; then
	echo "== no unit test binaries in $UNIT_DIR/"
fi
for t in "${units[@]}"; do
	if [ -f "$t" ] && [ -x "$t" ]; then
		run_part "$(basename "$t")" "$UNIT_TIMEOUT" "$(realpath "$t")"
	fi
done

run_part integration "$INTEGRATION_TIMEOUT" /usr/bin/python3 test/integration/run.py "$@"

echo
if [ "${#bad_parts[@]}" -gt 0 ]; then
	echo "failed parts: ${bad_parts[*]}"
fi
echo "$total_pass passed, $total_fail failed"
[ "${#bad_parts[@]}" -eq 0 ]
