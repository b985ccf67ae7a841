# Shared by the GPU check scripts: `step NAME COMMAND...` runs a command, prints its exit status
# and time, and counts it in $failed when it fails.
failed=0
step() {
    local name=$1; shift
    echo "=== $name: $*"
    local t0=$SECONDS
    "$@"
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    [ $rc -eq 0 ] || failed=$((failed + 1))
}
