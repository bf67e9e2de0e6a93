#!/bin/sh
# The box rehearsal by hand, for one site of the example fleet, with its
# report kept:
#
#   sudo tests/rehearsal/run.sh [SITE] [REPORT-DIR]
#
# SITE defaults to clinic-01 (any compose site of the fleet whose LAN and
# address are set); the reports (one Markdown table per stage: the site,
# the smoke workload, the memory of Dify's processes with the measured
# floors as data (memory-RELEASE.toml), the workload's data served after
# the move to an IPv6 LAN and TLS, the site then, after a reboot) go to
# REPORT-DIR, default target/rehearsal/. The site runs the fleet's release;
# DIFY_CFG_REHEARSAL_FROM=previous (or a release) starts it on the release
# before and runs the upgrade drill. DIFY_CFG_REHEARSAL_KEEP=1 leaves the box up
# afterwards to look around (tests/rehearsal/cleanup.sh removes it):
#
#   nsenter --net=/run/netns/dcr-box docker -H unix:///run/dify-cfg-rehearsal/docker.sock ps
#   ip netns exec dcr-lan curl -H 'Host: clinic-01.clinics.example.org' http://10.20.1.10/v1/
#
# Needs what .ci/run installs (docker.io, mmdebstrap, iproute2, iptables,
# postgresql-server-dev-15, patch, uv, the docker compose plugin), pyenv's
# Python 3.12 and the reference files (Dify's and pgvector's source). The
# first run builds the root file systems and the api's file system with its
# locked dependencies (a few minutes); later runs take them from
# ~/.cache/dify-cfg/rehearsal/.
set -eu
cd "$(dirname "$0")/../.."
DIFY_CFG_REHEARSAL_SITE=${1:-clinic-01}
DIFY_CFG_REHEARSAL_REPORT=${2:-$PWD/target/rehearsal}
export DIFY_CFG_REHEARSAL_SITE DIFY_CFG_REHEARSAL_REPORT
# Fail rather than skip when something is missing: this was asked for.
DIFY_CFG_REQUIRE_TOOLS=1 cargo test --test it rehearsal::box_rehearsal -- --nocapture --exact
echo "reports: $DIFY_CFG_REHEARSAL_REPORT"
