#!/usr/bin/env bash
# Installs what the tests need beyond npm packages: redis-server (Debian's package) for the Redis-backed features'
# tests. The sample bot and the benchmarks need none of it. Safe to run again.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing redis-server from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install it (e.g. apt-get install redis-server) to run the Redis tests" >&2
    exit 1
  fi
fi
