#!/usr/bin/env bash
# System packages the tests need: git (real repositories) and chromium (the HTML report is opened
# in a real browser). Installed only when missing and when we may (root, apt available).
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: missing ${need[*]}; tests that need them will be skipped" >&2
fi
