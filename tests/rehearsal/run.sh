#!/bin/sh
# The box rehearsal by hand, for one site of the example fleet, with its
# report kept:
#
#   sudo tests/rehearsal/run.sh [SITE] [REPORT-DIR]
#
# SITE defaults to clinic-01 (any compose site of the fleet whose LAN and
# address are set); the reports (one Markdown table per stage: the site,
# its IPv6 LAN variant, its TLS variant, after a reboot) go to REPORT-DIR,
# default target/rehearsal/. DIFY_CFG_REHEARSAL_KEEP=1 leaves the box up
# afterwards to look around (tests/rehearsal/cleanup.sh removes it):
#
#   nsenter --net=/run/netns/dcr-box docker -H unix:///run/dify-cfg-rehearsal/docker.sock ps
#   ip netns exec dcr-lan curl -H 'Host: clinic-01.clinics.example.org' http://10.20.1.10/v1/
#
# Needs what .ci/run installs (docker.io, mmdebstrap, iproute2, iptables,
# postgresql-server-dev-15, the docker compose plugin) and the reference
# files (for pgvector's source). The first run builds the root file system
# (a few minutes); later runs take it from ~/.cache/dify-cfg/rehearsal/.
set -eu
cd "$(dirname "$0")/../.."
DIFY_CFG_REHEARSAL_SITE=${1:-clinic-01}
DIFY_CFG_REHEARSAL_REPORT=${2:-$PWD/target/rehearsal}
export DIFY_CFG_REHEARSAL_SITE DIFY_CFG_REHEARSAL_REPORT
# Fail rather than skip when something is missing: this was asked for.
DIFY_CFG_REQUIRE_TOOLS=1 cargo test --test it rehearsal::box_rehearsal -- --nocapture --exact
echo "reports: $DIFY_CFG_REHEARSAL_REPORT"
