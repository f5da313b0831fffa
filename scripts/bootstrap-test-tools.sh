#!/usr/bin/env bash
# Build the tools only the tests use, after scripts/bootstrap.sh (`make test` runs both;
# `make up` runs only the main bootstrap). Each is built once per machine into the tool
# cache outside the clone (scripts/tool-cache.sh) and linked into .tools/:
#
#   .tools/wadm-probe/release/wadm-probe   wadm-client 0.7 CLI (tests/integration/test_wadm_client_compat.py)
#   .tools/wash/bin/wash                    real wash-cli 0.39 (tests/integration/test_wash_compat.py)
#
# and installs openssh-server and sudo from Debian (sshd runs on the test machines of
# tests/machines.py, where a non-root user provisions through sudo; no system sshd is
# started) and postgresql (the sqldb-postgres provider's tests start their own server).
#
# A cold machine pays about 5 minutes for wadm-probe and 25 for wash; later runs, in
# any clone, take a second. A tool that fails to build is reported and its tests skip
# with the reason. SKIP_WASH=1 skips the wash build (its tests then skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
export TOOLS

step() { printf '[test-tools] %s\n' "$*" >&2; }
timed() {
  local label="$1"; shift
  local start=$SECONDS
  step "$label ..."
  "$@"
  step "$label: done in $((SECONDS - start))s"
}

# sshd: each test machine (tests/machines.py, a network namespace) runs its own sshd on its
# own address for the SSH provisioning tests. The package's postinst would start a system
# sshd on the host's port 22 where an init system runs one; policy-rc.d 101 keeps it from
# starting, and where systemd is PID 1 the unit it enabled is disabled again: the tests
# never use a system sshd, and a fresh install should not open port 22.
if [[ -x /usr/sbin/sshd && -x /usr/bin/sudo ]]; then
  step "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1)"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
  timed "openssh-server and sudo from Debian" bash -c '
    apt-get update -qq >/dev/null
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e $policy ]]; then printf "#!/bin/sh\nexit 101\n" >$policy; chmod +x $policy; made_policy=1; fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server sudo >/dev/null || status=$?
    [[ $made_policy == 1 ]] && rm -f $policy
    if [[ $status == 0 && "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; then
      systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
    exit $status'
  step "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1)"
else
  step "WARNING: openssh-server or sudo is not installed and cannot be (needs root + apt-get); SSH provisioning tests will be skipped"
fi

# postgresql: Debian's server backs the sqldb-postgres provider's tests; each test starts
# its own cluster in a temporary directory on a loopback port (tests/postgres.py), never
# the system one. policy-rc.d keeps the package from starting a cluster where an init
# system runs (and systemd's unit is disabled again), as for sshd above.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [[ -n "$(pg_bin)" && -x "$(pg_bin)/postgres" ]]; then
  step "postgresql: $("$(pg_bin)/postgres" --version)"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
  timed "postgresql from Debian" bash -c '
    apt-get update -qq >/dev/null
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e $policy ]]; then printf "#!/bin/sh\nexit 101\n" >$policy; chmod +x $policy; made_policy=1; fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null || status=$?
    [[ $made_policy == 1 ]] && rm -f $policy
    if [[ $status == 0 && "$(ps -p 1 -o comm= 2>/dev/null)" == systemd ]]; then
      systemctl disable --now postgresql.service >/dev/null 2>&1 || true
    fi
    exit $status'
  step "postgresql: $("$(pg_bin)/postgres" --version)"
else
  step "WARNING: postgresql is not installed and cannot be (needs root + apt-get); sqldb-postgres tests will be skipped"
fi

timed "Apache Kafka from Maven Central" bash "$ROOT/scripts/install-kafka.sh" ||
  step "WARNING: resolving Kafka failed (needs java 17+ and mvn); messaging-kafka tests will be skipped"

if ! command -v cargo >/dev/null 2>&1; then
  step "WARNING: cargo is not installed; the wadm-client and wash compatibility tests will be skipped"
  exit 0
fi

timed "wadm-probe (wadm-client 0.7 from crates.io)" bash "$ROOT/scripts/build-wadm-probe.sh" ||
  step "WARNING: building wadm-probe failed; wadm-client compatibility tests will be skipped"

if [[ "${SKIP_WASH:-0}" == "1" ]]; then
  step "wash: skipped (SKIP_WASH=1); wash compatibility tests will be skipped"
else
  timed "wash-cli from crates.io" bash "$ROOT/scripts/build-wash.sh" ||
    step "WARNING: building wash failed; wash compatibility tests will be skipped"
fi
