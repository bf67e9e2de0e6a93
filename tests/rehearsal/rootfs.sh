#!/bin/sh
# The Debian root file systems the box rehearsal's images start from, built
# once with mmdebstrap from Debian's packages and kept in the cache:
#
#   tests/rehearsal/rootfs.sh SUITE      prints the path of SUITE's tar file
#
# bookworm: PostgreSQL 15, Redis and the Python of the stand-ins; trixie:
# nginx 1.26 and squid 6.13, the nearest Debian has to the images' nginx
# 1.27 (which reads `http2 on;`) and squid 6.6. The file's name carries a
# hash of what it is built from, so a changed package list builds anew.
# Runs that want the same file at once wait for each other (flock), so
# .ci/run can start the builds early while the suite compiles.
set -euf
suite=${1:?usage: rootfs.sh SUITE}
case $suite in
bookworm)
    packages="ca-certificates curl iproute2 openssl postgresql-15 procps python3 python3-psycopg2 python3-redis redis-server wget"
    ;;
trixie)
    packages="ca-certificates curl nginx openssl procps squid wget"
    ;;
*)
    echo "rootfs.sh: no root file system for suite '$suite' (bookworm, trixie)" >&2
    exit 2
    ;;
esac
mirror=http://deb.debian.org/debian
# Globbing is off (set -f): these are dpkg's patterns, not the host's files.
excludes="/usr/share/doc/* /usr/share/info/* /usr/share/locale/* /usr/share/man/*"
cache=${DIFY_CFG_REHEARSAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dify-cfg/rehearsal}
mkdir -p "$cache"
# One line a word: the suite, the mirror, each package, each exclusion.
# shellcheck disable=SC2086
key=$(printf '%s\n' "$suite" "$mirror" $packages $excludes | sha256sum | cut -c1-12)
tar=$cache/rootfs-$suite-$key.tar
exec 8>"$cache/rootfs-$suite.lock"
flock 8
if [ ! -f "$tar" ]; then
    echo "rootfs.sh: building the $suite root file system with mmdebstrap into $cache" >&2
    args="--quiet --variant=minbase --format=tar --include=$(echo "$packages" | tr ' ' ,)"
    for e in $excludes; do
        args="$args --dpkgopt=path-exclude=$e"
    done
    rm -f "$tar.partial"
    # $args is split on purpose: one word an option, none holds a space.
    # shellcheck disable=SC2086
    mmdebstrap $args "$suite" "$tar.partial" "$mirror" >&2
    mv "$tar.partial" "$tar"
fi
echo "$tar"
