#!/bin/sh
# The file system of the rehearsal's dify-api image (Dify's own api, worker
# and beat), made once per release and kept in the cache as one tar file
# for `docker import` (one layer, written once: a Dockerfile's build
# context and COPY would write its 2.5 GB several times over):
#
#   tests/rehearsal/dify-api.sh RELEASE REFERENCE ROOTFS   prints the tar's path
#
# REFERENCE is the reference folder (../shared/reference; the release's
# source is REFERENCE/dify/RELEASE/source), ROOTFS the bookworm root file
# system's tar from rootfs.sh. On top of that root file system, laid out as
# the api.Dockerfile dify-cfg generates lays out its production stage (which
# follows Dify's own):
#
#   /usr/local/      the machine's Python 3.12 (pyenv's build; the image's
#                    is python:3.12-slim-bookworm's, also in /usr/local)
#   /app/api/        the release's api source, owned by dify (uid 1001), with
#                    its locked dependencies installed by uv into
#                    /app/api/.venv (--frozen --no-dev --no-editable, as
#                    both Dockerfiles do), its storage/ folder and the
#                    tiktoken cache folder (empty: see below)
#   /home/dify       the dify user's home
#   /entrypoint.sh   the release's api/docker/entrypoint.sh, unchanged
#   /etc/passwd, /etc/group   the root file system's, with the dify user
#
# The image's settings (user, environment, entrypoint) are read from the
# site's generated api.Dockerfile and given to `docker import` by
# tests/it/rehearsal/images.rs. What the Dockerfile downloads at build time
# from hosts this machine cannot reach (NLTK's data, tiktoken's encoding)
# is not in the image; its runtime packages are in the root file system.
#
# One locked dependency cannot be had here: flask-restx is locked to a git
# fork that cannot be fetched (only PyPI is reachable). The lock is kept for
# every other package; flask-restx is PyPI's 1.3.2, and Dify's
# libs/flask_restx_compat.py gets the one change that release needs
# (tests/rehearsal/flask-restx-1.3.2.patch, the rehearsal report names it).
#
# The tar's name carries a hash of everything it is made from; runs that
# want the same tar wait for each other (flock).
set -eu
usage="usage: dify-api.sh RELEASE REFERENCE ROOTFS"
release=${1:?$usage}
reference=${2:?$usage}
rootfs=${3:?$usage}
here=$(cd "$(dirname "$0")" && pwd)
source=$reference/dify/$release/source
patchfile=$here/flask-restx-1.3.2.patch
for f in "$source/api/uv.lock" "$source/api/docker/entrypoint.sh" "$source/dify-agent/pyproject.toml"; do
    if [ ! -f "$f" ]; then
        echo "dify-api.sh: $f is missing: the reference has no Dify $release source" >&2
        exit 2
    fi
done
python=${DIFY_CFG_PYTHON312:-$(pyenv root 2>/dev/null)/versions/3.12.1}
if [ ! -x "$python/bin/python3.12" ]; then
    echo "dify-api.sh: no Python 3.12 at $python (set DIFY_CFG_PYTHON312 to its prefix)" >&2
    exit 2
fi
command -v uv >/dev/null || {
    echo "dify-api.sh: uv is not installed (pip install uv)" >&2
    exit 2
}
cache=${DIFY_CFG_REHEARSAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dify-cfg/rehearsal}
mkdir -p "$cache"
key=$( (
    cd "$source" && find api dify-agent -type f | LC_ALL=C sort | xargs sha256sum
    cat "$patchfile" "$here/dify-api.sh" | sha256sum
    basename "$rootfs"
    "$python/bin/python3.12" -c 'import sys; print(sys.version)'
    uv --version
) | sha256sum | cut -c1-12)
tar=$cache/dify-api-$release-$key.tar
exec 8>"$cache/dify-api-$release.lock"
flock 8
if [ -f "$tar" ]; then
    echo "$tar"
    exit 0
fi
echo "dify-api.sh: building Dify $release's api with its locked dependencies into $tar" >&2
stage=$cache/dify-api-$release.partial
rm -rf "$stage" "$tar.partial"
mkdir -p "$stage/app" "$stage/usr/local/bin" "$stage/usr/local/lib" "$stage/etc" \
    "$stage/usr/lib/x86_64-linux-gnu"
cp -a "$source/api" "$stage/app/api"
# As a checkout has them (the reference files are read-only).
chmod -R u+w "$stage/app/api"
# What dify-cfg's Dockerfile makes for the dify user: the storage folder a
# fresh volume takes its owner from, the tiktoken cache, the home folder.
mkdir -p "$stage/app/api/storage" "$stage/app/api/.tiktoken_cache" "$stage/home/dify"
cp -a "$source/dify-agent" "$stage/dify-agent"
cp "$source/api/docker/entrypoint.sh" "$stage/entrypoint.sh"
patch --quiet -d "$stage/app/api" -p1 <"$patchfile"
# The interpreter, its shared library and its standard library (no
# site-packages: the venv holds the packages; no tests). pyenv's build
# looks for its library in pyenv's folder first, then where the dynamic
# linker looks by default: a link from there.
cp -a "$python/bin/python3.12" "$stage/usr/local/bin/"
ln -s python3.12 "$stage/usr/local/bin/python3"
ln -s python3.12 "$stage/usr/local/bin/python"
cp -a "$python"/lib/libpython3.12.so* "$stage/usr/local/lib/"
ln -s /usr/local/lib/libpython3.12.so.1.0 "$stage/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0"
tar -C "$python/lib" --exclude=python3.12/site-packages --exclude=python3.12/test \
    --exclude='__pycache__' -cf - python3.12 | tar -C "$stage/usr/local/lib" -xf -
mkdir -p "$stage/usr/local/lib/python3.12/site-packages"
# The api's dependencies: dify-agent is a path dependency at ../dify-agent,
# installed into the venv (--no-editable), so only the api's folder stays.
mv "$stage/dify-agent" "$stage/app/dify-agent"
venv=$stage/app/api/.venv
uv venv --quiet --relocatable --python "$python/bin/python3.12" "$venv"
(
    cd "$stage/app/api"
    UV_PROJECT_ENVIRONMENT=$venv uv sync --quiet --frozen --no-dev --no-editable \
        --no-install-package flask-restx
    uv pip install --quiet --python "$venv/bin/python" --no-deps flask-restx==1.3.2
)
rm -rf "$stage/app/dify-agent"
# The venv as the image sees it: its interpreter in /usr/local.
rm "$venv/bin/python"
ln -s /usr/local/bin/python3.12 "$venv/bin/python"
sed -i 's|^home = .*|home = /usr/local/bin|' "$venv/pyvenv.cfg"
# The dify user and group (uid and gid 1001, as Dify's Dockerfile makes them).
tar -xOf "$rootfs" ./etc/passwd >"$stage/etc/passwd"
tar -xOf "$rootfs" ./etc/group >"$stage/etc/group"
echo "dify:x:1001:1001::/home/dify:/bin/bash" >>"$stage/etc/passwd"
echo "dify:x:1001:" >>"$stage/etc/group"
# The root file system, then the rest appended. The engine refuses a tar
# that names a path twice: the folders the root file system has already
# are left out, and its passwd and group are replaced.
tar -tf "$rootfs" | sed 's|/$||' | LC_ALL=C sort >"$stage.listed"
cp "$rootfs" "$tar.partial"
tar --delete -f "$tar.partial" ./etc/passwd ./etc/group
(
    cd "$stage"
    find ./usr ./entrypoint.sh | LC_ALL=C sort | LC_ALL=C comm -23 - "$stage.listed"
    printf '%s\n' ./etc/passwd ./etc/group
) >"$stage.root"
(cd "$stage" && find ./app ./home | LC_ALL=C sort | LC_ALL=C comm -23 - "$stage.listed") >"$stage.dify"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --no-recursion -rf "$tar.partial" -T "$stage.root"
tar -C "$stage" --owner=1001 --group=1001 --numeric-owner --no-recursion -rf "$tar.partial" -T "$stage.dify"
mv "$tar.partial" "$tar"
rm -rf "$stage" "$stage.listed" "$stage.root" "$stage.dify"
# The files of this release made from other inputs are 3 GB each.
find "$cache" -maxdepth 1 -name "dify-api-$release-*.tar" ! -path "$tar" -delete
echo "$tar"
