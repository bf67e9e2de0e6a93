#!/usr/bin/env bash
# bench/run.sh [N ...]: the dify-cfg benchmark of issue 6 (see bench/README.md).
#
# Builds dify-cfg (release) and the bench helper, installs Kapitan in
# bench/.venv, then for each fleet size N (default 10 100 1000 10000), on
# tmpfs: generates the fleet, times dify-cfg and the peers, and writes
# bench/RESULTS.md.
#
# Environment:
#   BENCH_RUNS=5            runs per measurement (the median is reported)
#   BENCH_KAPITAN_MAX=1000  run Kapitan only up to this N (estimated above
#                           it from its per-site rate); `all` for every N
#   BENCH_KAPITAN_RUNS      runs of Kapitan (default: BENCH_RUNS)
#   BENCH_KAPITAN_ARGS      extra `kapitan compile` arguments
#                           (e.g. `--inventory-backend reclass-rs`)
#   BENCH_WORK=/dev/shm/dify-cfg-bench   the work directory (tmpfs)
#   BENCH_KEEP=1            keep each fleet's work directory afterwards
#   DIFY_CFG=path           use this dify-cfg binary instead of building one
#   CARGO_TARGET_DIR        where both cargo builds go (default: target/)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
if [ $# -gt 0 ]; then ns=("$@"); else ns=(10 100 1000 10000); fi
for n in "${ns[@]}"; do
    case $n in '' | *[!0-9]*) echo "run.sh: not a fleet size: $n" >&2; exit 2 ;; esac
done
runs=${BENCH_RUNS:-5}
work=${BENCH_WORK:-/dev/shm/dify-cfg-bench}
kapitan_version=0.36.3
kapitan_max=${BENCH_KAPITAN_MAX:-1000}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
python=${PYTHON:-python3}

say() { printf '[bench] %s\n' "$*" >&2; }

for tool in git tar sha256sum xargs /usr/bin/time cargo "$python"; do
    command -v "$tool" >/dev/null || { say "needs $tool"; exit 2; }
done

if [ -n "${DIFY_CFG:-}" ]; then
    dify_cfg=$DIFY_CFG
else
    say "building dify-cfg (release) into $target_dir"
    CARGO_TARGET_DIR=$target_dir cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
    dify_cfg=$target_dir/release/dify-cfg
fi
say "building the bench helper (dump-contexts) into $target_dir"
CARGO_TARGET_DIR=$target_dir cargo build --release --quiet --manifest-path "$here/Cargo.toml"
dump=$target_dir/release/dump-contexts

venv=$here/.venv
if [ ! -x "$venv/bin/kapitan" ] || [ "$("$venv/bin/kapitan" --version 2>/dev/null)" != "$kapitan_version" ]; then
    say "installing kapitan==$kapitan_version into $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kapitan==$kapitan_version"
fi

case $work in
/dev/shm/*) ;;
*) say "note: $work is not under /dev/shm; the issue asks for tmpfs" ;;
esac
mkdir -p "$work"

kmax_arg=()
[ "$kapitan_max" != all ] && kmax_arg=(--kapitan-max "$kapitan_max")
keep_arg=()
[ -n "${BENCH_KEEP:-}" ] && keep_arg=(--keep)

exec "$python" "$here/harness.py" "${ns[@]}" \
    --runs "$runs" \
    ${BENCH_KAPITAN_RUNS:+--kapitan-runs "$BENCH_KAPITAN_RUNS"} \
    "${kmax_arg[@]}" "${keep_arg[@]}" \
    --kapitan-args "${BENCH_KAPITAN_ARGS:-}" \
    --work "$work" \
    --dify-cfg "$dify_cfg" \
    --dump "$dump" \
    --kapitan "$venv/bin/kapitan" \
    --templates "$repo/templates" \
    --results "$here/RESULTS.md" \
    --raw "$here/results.json"
