#!/usr/bin/env bash
# Kill-and-resume check of `coloc measure` on a GPU machine:
#   ci/gpu-resume-check.sh COLOC_BINARY OUT_DIR
# Starts the smoke suite, kills it with SIGKILL (no handler runs) while the MPS pair is being
# measured, checks that the killed run is UNFINISHED and that no MPS client outlived it,
# resumes it, and checks that the dataset is whole: every run once, none lost. The resumed run
# must also have quit the daemon the killed one left behind. Exit status: failed checks.
set -u
coloc=${1:?usage: gpu-resume-check.sh COLOC_BINARY OUT_DIR}
out=${2:?usage: gpu-resume-check.sh COLOC_BINARY OUT_DIR}
mkdir -p "$out"
data=$(mktemp -d)/smoke
failed=0
ok() { echo "ok:   $*"; }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
lines() { [ -f "$data/progress.jsonl" ] && wc -l < "$data/progress.jsonl" || echo 0; }
mps_processes() { pgrep -f 'nvidia-cuda-mps-(control|server)' | wc -l; }
before=$(mps_processes)

# The smoke suite's sixth run is its MPS pair: kill 1.5 s after the fifth finished.
"$coloc" measure suites/smoke.toml --out "$data" > "$out/first.log" 2>&1 &
pid=$!
while [ "$(lines)" -lt 5 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; done
sleep 1.5
kill -KILL $pid 2>/dev/null && ok "killed coloc measure with $(lines) of 7 runs done" || bad "coloc measure ended before the kill"
wait $pid 2>/dev/null
sleep 0.5
workers=$(pgrep -f -- "__run-worker" | wc -l)
[ "$workers" -eq 0 ] && ok "no MPS client outlived the killed run" || bad "$workers MPS client(s) outlived the killed run"
echo "MPS processes left by the kill: $(($(mps_processes) - before))"
"$coloc" dataset check "$data" > "$out/check-killed.txt" 2>&1
rc=$?
cat "$out/check-killed.txt"
[ $rc -ne 0 ] && grep -q UNFINISHED "$out/check-killed.txt" && ok "the killed dataset is reported UNFINISHED" || bad "the killed dataset is not reported UNFINISHED (exit $rc)"

"$coloc" measure suites/smoke.toml --out "$data" --resume > "$out/resume.log" 2>&1 && ok "resume finished" || bad "resume failed: $(tail -3 "$out/resume.log")"
grep -E "resuming|removed" "$out/resume.log"
"$coloc" dataset check "$data" > "$out/check-resumed.txt" 2>&1 && ok "the resumed dataset is whole" || bad "the resumed dataset is not whole"
cat "$out/check-resumed.txt"
left=$(($(mps_processes) - before))
[ "$left" -eq 0 ] && ok "no MPS process of coloc left running" || bad "$left MPS process(es) of coloc left running"
cp "$data/summary.txt" "$data/progress.jsonl" "$out/"
echo "failed checks: $failed"
exit $failed
