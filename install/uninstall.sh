#!/usr/bin/env bash
# Removes what install.sh installed: stops and disables the service, deletes the unit, the
# binary and the web UI. The working directory (jobs and their history) and the service user
# stay; the commands that remove them are printed at the end.
#
#   sudo ./install/uninstall.sh
#
# Takes the same PREFIX, SERVITOR_DIR, SERVITOR_USER and SYSTEM_ROOT as install.sh.
set -euo pipefail

die() {
    printf 'uninstall.sh: %s\n' "$*" >&2
    exit 1
}
note() { printf '%s\n' "$*"; }

prefix=${PREFIX:-/usr/local}
work_dir=${SERVITOR_DIR:-/srv/servitor}
user=${SERVITOR_USER:-}
root=${SYSTEM_ROOT:-}
root=${root%/}

for setting in "PREFIX=$prefix" "SERVITOR_DIR=$work_dir" ${root:+"SYSTEM_ROOT=$root"}; do
    [[ ${setting#*=} == /* ]] || die "${setting%%=*} must be an absolute path, got '${setting#*=}'"
done
[[ -z $root || -d $root ]] || die "SYSTEM_ROOT is not a directory: '$root'"
[[ -n $root || $EUID -eq 0 ]] || die "must run as root (try: sudo $0), or set SYSTEM_ROOT"

unit=$root/etc/systemd/system/servitor.service

if [[ -n $root ]]; then
    note "would run: systemctl disable --now servitor.service"
elif command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    # stopping waits for running jobs, up to the unit's TimeoutStopSec
    systemctl disable --now --quiet servitor.service 2>/dev/null || true
fi

rm -f -- "$unit"
note "removed /etc/systemd/system/servitor.service"
if [[ -z $root ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
fi

rm -f -- "$root$prefix/bin/servitor"
note "removed $prefix/bin/servitor"
rm -rf -- "$root$prefix/share/servitor"
note "removed $prefix/share/servitor"

note "kept $work_dir (jobs in config/, execution history in state/); to delete it too:"
note "  sudo rm -rf $work_dir"
if [[ -n $user && $user != root ]]; then
    note "kept the user $user; to delete it too:"
    note "  sudo userdel $user"
fi
