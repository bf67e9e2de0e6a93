#!/bin/sh
# The Debian root file systems the box rehearsal's images start from, built
# once with mmdebstrap from Debian's packages and kept in the cache:
#
#   tests/rehearsal/rootfs.sh SUITE      prints the path of SUITE's tar file
#
# bookworm: PostgreSQL 15, Redis, the Python of the stand-ins and the
# libraries Dify's api needs (its Python comes from tests/rehearsal/dify-api.sh); trixie:
# nginx 1.26 and squid 6.13, the nearest Debian has to the images' nginx
# 1.27 (which reads `http2 on;`) and squid 6.6. The file's name carries a
# hash of what it is built from, so a changed package list builds anew.
# Runs that want the same file at once wait for each other (flock), so
# .ci/run can start the builds early while the suite compiles.
set -euf
suite=${1:?usage: rootfs.sh SUITE}
case $suite in
bookworm)
    # The first line: PostgreSQL, Redis and the stand-ins. The rest: what
    # Dify's api (its Python 3.12 and its locked wheels) links against or
    # opens at run time, and the runtime packages of dify-cfg's api.Dockerfile.
    packages="ca-certificates curl iproute2 openssl postgresql-15 procps python3 python3-psycopg2 python3-redis redis-server wget
        libbz2-1.0 libffi8 libfido2-1 libgcc-s1 libgomp1 libgssapi-krb5-2 libkeyutils1 liblzma5 libncursesw6 libnsl2 libreadline8
        libsasl2-2 libsqlite3-0 libssl3 libstdc++6 libtbb12 libtirpc3 libudev1 libuuid1 zlib1g
        libgmp10 libmpfr6 libmpc3 libmagic1 media-types nodejs"
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
    args="--quiet --variant=minbase --format=tar --include=$(echo $packages | tr ' ' ,)"
    for e in $excludes; do
        args="$args --dpkgopt=path-exclude=$e"
    done
    rm -f "$tar.partial"
    # $args is split on purpose: one word an option, none holds a space.
    # shellcheck disable=SC2086
    mmdebstrap $args "$suite" "$tar.partial" "$mirror" >&2
    mv "$tar.partial" "$tar"
    # The files of this suite built from other lists are stale.
    find "$cache" -maxdepth 1 -name "rootfs-$suite-*.tar" ! -path "$tar" -delete
fi
echo "$tar"
