#!/usr/bin/env bash
# Installs the npm packages the project needs (npm ci when node_modules is missing or older than the lock file).
# Safe to run again. The test services (redis-server) are scripts/install-test-services.sh's job.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
