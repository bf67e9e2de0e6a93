#!/bin/sh
# The ubuntu/squid image's contract: squid with the arguments given, in the
# foreground; stale pid files from a previous run are removed.
set -eu
rm -f /run/squid.pid /var/run/squid.pid
exec squid "$@"
