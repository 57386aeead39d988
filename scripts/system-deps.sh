#!/usr/bin/env bash
# System packages the tests need: git (real repositories), chromium (the HTML report is opened
# in a real browser), and a single-node Slurm cluster (slurmctld, slurmd, munge and the client
# commands; the sweep tests start it on localhost). Installed only when missing and when we may
# (root, apt available).
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Debian's packages start their daemons through systemd where it runs; the tests start their
  # own instances instead, with their own configuration.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: missing ${need[*]}; tests that need them will be skipped" >&2
fi
