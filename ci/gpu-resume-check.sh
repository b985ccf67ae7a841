#!/usr/bin/env bash
# Interrupt-and-resume check of `coloc measure` on a GPU machine:
#   ci/gpu-resume-check.sh COLOC_BINARY OUT_DIR
# Starts the smoke suite and interrupts it with SIGINT (Ctrl-C) while a run's client processes
# (MPS or plain) are up: coloc must exit 130, record nothing for the run in flight and leave no
# MPS daemon. Resumes it and kills that with SIGKILL (no handler runs) during the next such run:
# no client may outlive it. Resumes again: the dataset must be whole, every run once, none
# FAILED, and no MPS process of coloc left. Exit status: failed checks.
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
workers() { pgrep -f -- "__run-worker" | wc -l; }
before=$(mps_processes)

# Waits until the suite's runs have begun (the manifest is written after the solo profiles, some
# of which run in MPS clients too) and a run with client processes has started and measured for
# a moment, then sends signal $2 to pid $1; fails if coloc ended first.
hit() {
    local pid=$1 sig=$2 t0=$SECONDS
    while [ ! -f "$data/manifest.json" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    while [ "$(workers)" -eq 0 ] && kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt 300 ]; do sleep 0.05; done
    sleep 0.3
    local up done
    up=$(workers) done=$(lines)
    kill "-$sig" "$pid" 2>/dev/null && ok "sent SIG$sig with $done runs done and $up client(s) up" || bad "coloc measure ended before SIG$sig"
    [ "$up" -gt 0 ] || bad "SIG$sig came between runs, not during one with client processes"
}

"$coloc" measure suites/smoke.toml --out "$data" > "$out/first.log" 2>&1 &
pid=$!
hit $pid INT
wait $pid
rc=$?
[ $rc -eq 130 ] && ok "SIGINT: coloc exited 130" || bad "SIGINT: coloc exited $rc"
grep -q "resume" "$out/first.log" && ok "SIGINT: it says how to resume" || bad "SIGINT: no word of --resume: $(tail -2 "$out/first.log")"
grep -q '"FAILED"' "$data/progress.jsonl" 2>/dev/null && bad "SIGINT: a run was recorded FAILED" || ok "SIGINT: no run recorded FAILED"
sleep 0.5
[ "$(workers)" -eq 0 ] && ok "SIGINT: no client outlived coloc" || bad "SIGINT: $(workers) client(s) outlived coloc"
[ $(($(mps_processes) - before)) -eq 0 ] && ok "SIGINT: no MPS process left" || bad "SIGINT: $(($(mps_processes) - before)) MPS process(es) left"
after_int=$(lines)

"$coloc" measure suites/smoke.toml --out "$data" --resume > "$out/second.log" 2>&1 &
pid=$!
# let the resumed run get past the runs with clients it redoes first
while [ "$(lines)" -le "$after_int" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
hit $pid KILL
wait $pid 2>/dev/null
sleep 0.5
[ "$(workers)" -eq 0 ] && ok "SIGKILL: no client outlived coloc" || bad "SIGKILL: $(workers) client(s) outlived coloc"
echo "MPS processes left by the kill: $(($(mps_processes) - before))"
"$coloc" dataset check "$data" > "$out/check-killed.txt" 2>&1
rc=$?
cat "$out/check-killed.txt"
[ $rc -ne 0 ] && grep -q UNFINISHED "$out/check-killed.txt" && ok "the killed dataset is reported UNFINISHED" || bad "the killed dataset is not reported UNFINISHED (exit $rc)"

"$coloc" measure suites/smoke.toml --out "$data" --resume > "$out/resume.log" 2>&1 && ok "resume finished" || bad "resume failed: $(tail -3 "$out/resume.log")"
grep -E "resuming|removed" "$out/resume.log"
"$coloc" dataset check "$data" > "$out/check-resumed.txt" 2>&1 && ok "the resumed dataset is whole" || bad "the resumed dataset is not whole"
cat "$out/check-resumed.txt"
grep -q '"FAILED"' "$data/progress.jsonl" && bad "a run is recorded FAILED" || ok "no run is recorded FAILED"
left=$(($(mps_processes) - before))
[ "$left" -eq 0 ] && ok "no MPS process of coloc left running" || bad "$left MPS process(es) of coloc left running"
cp "$data/summary.txt" "$data/progress.jsonl" "$out/"
echo "failed checks: $failed"
exit $failed
