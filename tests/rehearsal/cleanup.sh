#!/bin/sh
# Removes what a box rehearsal left behind: its Docker engine (stopped, so
# that its containers stop and its mounts go), the engine's files, and its
# network namespaces. The rehearsal runs it before it starts and when it
# ends; .ci/run runs it on exit, so a failed or killed run leaves nothing.
# Touches only what carries the rehearsal's names (dcr-*, dify-cfg-rehearsal).
set -u
RUN=/run/dify-cfg-rehearsal
# Unmount everything mounted below $1, deepest first.
unmount_under() {
    awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
}
if [ -f "$RUN/docker.pid" ]; then
    pid=$(cat "$RUN/docker.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 60 ]; do
            sleep 0.5
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi
# Processes the rehearsal started inside its namespaces (stand-in hosts,
# containerd and its shims when the engine was killed).
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^dcr-/ { print $1 }'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
    done
done
if [ -f "$RUN/workdir" ]; then
    work=$(cat "$RUN/workdir")
    case $work in
    /var/tmp/dify-cfg-rehearsal.*)
        # The engine's overlay and volume mounts.
        unmount_under "$work"
        rm -rf "$work"
        ;;
    esac
fi
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^dcr-/ { print $1 }'); do
    ip netns delete "$ns"
done
# An engine that died without cleaning up leaves its containers' network
# namespaces bound under its exec root; unmount them (deepest first) so the
# folder can go.
unmount_under "$RUN"
rm -rf "$RUN"
