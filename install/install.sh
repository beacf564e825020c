#!/usr/bin/env bash
# Installs servitor as a systemd service, or upgrades an existing installation in place.
#
#   sudo ./install/install.sh
#
# Settings, all optional, taken from the environment:
#   SERVITOR_BINARY        use this binary instead of running `cargo build --release --locked`
#   PREFIX                 where the binary and the web UI go (default /usr/local)
#   SERVITOR_DIR           the working directory of the service (default /srv/servitor)
#   SERVITOR_USER          the account the daemon and its jobs run as; created when missing
#                          (default root)
#   SERVITOR_GROUP         the group the daemon runs with; created when missing
#                          (default: the user's own group)
#   SERVITOR_LISTEN        TCP addresses to serve on as well, space separated,
#                          e.g. tcp://127.0.0.1:8080 (default: none, UNIX socket only)
#   SERVITOR_UMASK         umask of the daemon and its jobs, octal (default 0077)
#   SERVITOR_STOP_TIMEOUT  how long a stop waits for running jobs (default 15min)
#   SERVITOR_UI_SOURCE     folder of web UI files to install (default: ui/ of this checkout)
#   SYSTEM_ROOT            install below this folder instead of /, touching nothing else:
#                          no systemctl, no useradd, no chown (what they would do is printed)
#
# Running it again replaces the binary, the web UI and the unit, and leaves config/ and
# state/ of the working directory as they are.
set -euo pipefail

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}
note() { printf '%s\n' "$*"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

prefix=${PREFIX:-/usr/local}
work_dir=${SERVITOR_DIR:-/srv/servitor}
user=${SERVITOR_USER:-root}
group=${SERVITOR_GROUP:-}
listen=${SERVITOR_LISTEN:-}
umask_value=${SERVITOR_UMASK:-0077}
stop_timeout=${SERVITOR_STOP_TIMEOUT:-15min}
ui_source=${SERVITOR_UI_SOURCE:-$repo/ui}
binary=${SERVITOR_BINARY:-}
root=${SYSTEM_ROOT:-}
root=${root%/}

# --- validate everything before writing anything -------------------------------------------

# Paths go verbatim into the unit file, where spaces, quotes, `%` and `\` have meanings.
check_path() {
    local name=$1 value=$2
    [[ $value == /* ]] || die "$name must be an absolute path, got '$value'"
    [[ $value =~ ^[A-Za-z0-9._/+@:-]+$ ]] ||
        die "$name may only contain letters, digits and . _ / + @ : -, got '$value'"
    [[ /$value/ != */../* && /$value/ != */./* ]] ||
        die "$name must not contain . or .. components, got '$value'"
}
check_path PREFIX "$prefix"
check_path SERVITOR_DIR "$work_dir"
[[ $work_dir != / ]] || die "SERVITOR_DIR must not be /"
[[ -z $root ]] || check_path SYSTEM_ROOT "$root"

name_pattern='^[a-z_][a-z0-9_-]{0,31}$'
[[ $user =~ $name_pattern ]] ||
    die "SERVITOR_USER must be a user name like 'servitor' (lower case, digits, _ or -), got '$user'"
[[ -z $group || $group =~ $name_pattern ]] ||
    die "SERVITOR_GROUP must be a group name like 'servitor' (lower case, digits, _ or -), got '$group'"

[[ $umask_value =~ ^[0-7]{3,4}$ ]] ||
    die "SERVITOR_UMASK must be octal, 3 or 4 digits 0-7 like 0077, got '$umask_value'"
umask_value=$(printf '%04o' "$((8#$umask_value))")

[[ $stop_timeout =~ ^(infinity|([0-9]+(us|ms|s|sec|m|min|h|d))+|[0-9]+)$ ]] ||
    die "SERVITOR_STOP_TIMEOUT must be a systemd time span like 15min, 900 or infinity, got '$stop_timeout'"

listen_args=""
read -r -a addresses <<<"$listen"
for address in "${addresses[@]}"; do
    [[ $address =~ ^tcp://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$ ]] ||
        die "SERVITOR_LISTEN must hold addresses like tcp://127.0.0.1:8080, got '$address'"
    listen_args+=" --listen $address"
done

if [[ -n $binary ]]; then
    [[ -f $binary && -x $binary ]] || die "SERVITOR_BINARY is not an executable file: '$binary'"
fi
[[ -z $root || -d $root ]] || die "SYSTEM_ROOT is not a directory: '$root'"

systemd_running=false
if [[ -z $root ]]; then
    [[ $EUID -eq 0 ]] || die "must run as root (try: sudo $0), or set SYSTEM_ROOT to install into a folder"
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        systemd_running=true
    fi
fi

# --- build ----------------------------------------------------------------------------------

if [[ -z $binary ]]; then
    note "building the release binary in $repo"
    if [[ $EUID -eq 0 && -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
        # Build as whoever called sudo: their toolchain, and target/ stays theirs.
        # shellcheck disable=SC2016 # $1 is expanded by the inner shell
        sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && cargo build --release --locked' build "$repo" ||
            die "cargo build failed; build it yourself and pass SERVITOR_BINARY=target/release/servitor"
    else
        command -v cargo >/dev/null ||
            die "cargo not found; install Rust, or pass SERVITOR_BINARY=path/to/servitor"
        (cd "$repo" && cargo build --release --locked) ||
            die "cargo build failed"
    fi
    binary=$repo/target/release/servitor
fi

# --- install --------------------------------------------------------------------------------

bin_dir=$root$prefix/bin
share_dir=$root$prefix/share/servitor
unit_dir=$root/etc/systemd/system
unit_path=$unit_dir/servitor.service
wd=$root$work_dir
stamp=$(date +%Y%m%d%H%M%S).$$

# Account changes and ownership only make sense on the real system; in a fake root they are
# printed instead.
run_or_show() {
    if [[ -n $root ]]; then
        note "would run: $*"
    else
        "$@"
    fi
}

if [[ -n ${SERVITOR_USER:-} || -n $group ]]; then
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    if [[ -n $group ]] && { [[ -n $root ]] || ! getent group "$group" >/dev/null; }; then
        run_or_show groupadd --system "$group"
    fi
    if [[ -n ${SERVITOR_USER:-} ]] && { [[ -n $root ]] || ! getent passwd "$user" >/dev/null; }; then
        if [[ -n $group ]]; then
            run_or_show useradd --system --gid "$group" --home-dir "$work_dir" --no-create-home --shell "$nologin" "$user"
        else
            run_or_show useradd --system --user-group --home-dir "$work_dir" --no-create-home --shell "$nologin" "$user"
        fi
    fi
fi

# The binary: copied next to its final place, then renamed over it, so the path always holds
# a whole binary and a running daemon keeps its own until it restarts.
install -d -m 0755 "$bin_dir"
install -m 0755 "$binary" "$bin_dir/.servitor.new.$stamp"
mv -f "$bin_dir/.servitor.new.$stamp" "$bin_dir/servitor"
note "installed $prefix/bin/servitor"

# The web UI: each version in its own folder, `ui` a symbolic link to the current one,
# switched with one rename.
install -d -m 0755 "$share_dir"
ui_version=ui.$stamp
if [[ -d $ui_source ]]; then
    cp -R "$ui_source" "$share_dir/$ui_version"
else
    printf 'install.sh: warning: no web UI files at %s, installing an empty UI folder\n' "$ui_source" >&2
    mkdir "$share_dir/$ui_version"
fi
chmod -R u+rwX,go+rX,go-w "$share_dir/$ui_version"
if [[ -d $share_dir/ui && ! -L $share_dir/ui ]]; then
    # a plain folder from a manual copy: move it aside so the link can take its name
    mv "$share_dir/ui" "$share_dir/ui.old.$stamp"
fi
ln -s "$ui_version" "$share_dir/.ui.link.$stamp"
mv -T "$share_dir/.ui.link.$stamp" "$share_dir/ui"
for old in "$share_dir"/ui.*; do
    [[ $old == "$share_dir/$ui_version" ]] || rm -rf -- "$old"
done
note "installed the web UI in $prefix/share/servitor/ui"

# The working directory: created when missing, never emptied or rewritten.
owner="$user:${group}"
for dir in "$wd" "$wd/config" "$wd/config/jobs" "$wd/state"; do
    if [[ ! -d $dir ]]; then
        install -d -m 0750 "$dir"
        run_or_show chown "$owner" "${dir#"$root"}"
    fi
done
note "working directory $work_dir (jobs in $work_dir/config/jobs)"

group_line=""
[[ -z $group ]] || group_line="Group=$group"$'\n'

install -d -m 0755 "$unit_dir"
cat >"$unit_dir/.servitor.service.$stamp" <<EOF
[Unit]
Description=servitor job manager ($work_dir)
After=network.target

[Service]
Type=exec
ExecStart=$prefix/bin/servitor serve --dir $work_dir$listen_args
WorkingDirectory=$work_dir
User=$user
${group_line}UMask=$umask_value
Environment=SERVITOR_UI_ROOT=$prefix/share/servitor/ui
Restart=on-failure
# SIGTERM goes to the daemon alone: it stops accepting, keeps queued executions on disk and
# waits for the running ones. When TimeoutStopSec runs out, every process of the service gets
# SIGKILL and the next start records the executions that were running as failed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=$stop_timeout
StandardOutput=journal
StandardError=journal
SyslogIdentifier=servitor

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$unit_dir/.servitor.service.$stamp"
mv -f "$unit_dir/.servitor.service.$stamp" "$unit_path"
note "wrote /etc/systemd/system/servitor.service"

# --- start ----------------------------------------------------------------------------------

if [[ -n $root ]]; then
    note "would run: systemctl daemon-reload"
    note "would run: systemctl enable servitor.service"
    note "would run: systemctl restart servitor.service"
elif $systemd_running; then
    systemctl daemon-reload
    systemctl enable --quiet servitor.service
    note "restarting servitor.service (waits for running jobs, at most $stop_timeout)"
    systemctl restart servitor.service
    note "servitor.service is $(systemctl is-active servitor.service || true)"
else
    printf 'install.sh: warning: systemd is not running here; start it with: systemctl enable --now servitor.service\n' >&2
fi
