#!/usr/bin/env bash
# deps.sh - install what Stork needs to build and test on Debian 12, and
# create the system users a root-run instance drops to.
#
# Run as root on a fresh machine. Idempotent: a second run installs
# nothing and changes nothing. Quiet unless something is missing; any
# failure stops the script with a message and a non-zero exit.
set -euo pipefail

die() { echo "deps.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and creates users)"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian 12"

# Build: compiler, CMake, and the libraries of DESIGN.md (all installed
# now, linked as they come into use).
build_pkgs=(build-essential cmake pkg-config libssl-dev libdb-dev libmilter-dev
            libc-ares-dev libunbound-dev libcrypt-dev db-util)
# Tests: real clients and the tools the end-to-end harness calls
# (useradd/userdel come from passwd, ss/ps from iproute2/procps); a real
# DNS environment on loopback for lib/dns (tests/harness/dns_env.py runs
# its own nsd and unbound on free ports; the packages' system services
# are not used); dns-root-data is the default dnssec_trust_anchor_file.
test_pkgs=(python3 swaks openssl procps iproute2 passwd ca-certificates
           nsd unbound ldnsutils dns-root-data)

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# System accounts (as Postfix's postfix/postdrop): `stork` runs the
# unprivileged daemons, group `storkdrop` owns the setgid maildrop path of
# sendmail, `vmail` owns the virtual mailboxes.
if ! getent group stork >/dev/null; then
    groupadd --system stork || die "groupadd stork failed"
fi
if ! getent passwd stork >/dev/null; then
    useradd --system --gid stork --home-dir /var/spool/stork --no-create-home \
        --shell /usr/sbin/nologin --comment "Stork mail system" stork \
        || die "useradd stork failed"
fi
if ! getent group storkdrop >/dev/null; then
    groupadd --system storkdrop || die "groupadd storkdrop failed"
fi
if ! getent group vmail >/dev/null; then
    groupadd --system vmail || die "groupadd vmail failed"
fi
if ! getent passwd vmail >/dev/null; then
    useradd --system --gid vmail --home-dir /var/vmail --no-create-home \
        --shell /usr/sbin/nologin --comment "Stork virtual mailboxes" vmail \
        || die "useradd vmail failed"
fi
exit 0
