#!/usr/bin/env bash
# demo.sh - install dependencies, build, and start a demo Stork instance
# whose files all live under ./demo/ (config demo/etc, queue demo/queue,
# virtual mailboxes demo/vmail, log demo/maillog), with SMTP on
# 127.0.0.1:2525 and one virtual user demo@demo.example (password "demo").
# Re-running it stops the running demo, rewrites its config and starts it
# again; delivered mail and queued messages are kept (rm -rf demo/ to
# start from nothing).
#
# As root (the intended use on a fresh machine) it installs packages and
# system users first, and the instance runs as an installed one would:
# daemons drop to the `stork` user, smtpd chroots to the queue, mailboxes
# belong to `vmail`. As a normal user (dependencies already installed) the
# instance runs entirely as that user.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
port=2525

die() { echo "demo.sh: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    bash tools/deps.sh || die "tools/deps.sh failed"
else
    echo "demo.sh: not root: skipping tools/deps.sh, running the instance as $(id -un)"
fi

echo "demo.sh: building (build/)"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j2 >"$top/build/demo-build.log" 2>&1 || {
    tail -n 40 "$top/build/demo-build.log" >&2
    die "build failed (full log: build/demo-build.log)"
}
bin=$top/build/bin
[ -x "$bin/stork" ] || die "build/bin/stork was not built"

# Where the instance lives. The daemons run as `stork`/`vmail`, which must
# be able to reach it; a checkout under a private home (/root is 0700)
# is not reachable, so then the files go to /var/lib/stork-demo and
# ./demo is a symlink to it.
demo=$top/demo
if [ "$(id -u)" -eq 0 ] && ! runuser -u stork -- test -x "$top" 2>/dev/null; then
    real=/var/lib/stork-demo
    mkdir -p "$real"
    chmod 0755 "$real"
    if [ ! -L "$demo" ]; then
        [ -e "$demo" ] && rm -rf "$demo"
        ln -s "$real" "$demo"
    fi
    echo "demo.sh: $top is not reachable by the stork user; the instance lives in $real (./demo links to it)"
    demo=$real
fi

etc=$demo/etc
# Stop a demo that is still running (from an earlier run of this script).
if [ -f "$etc/main.cf" ] && "$bin/stork" -c "$etc" status >/dev/null 2>&1; then
    echo "demo.sh: stopping the running demo"
    "$bin/stork" -c "$etc" stop || die "could not stop the running demo"
fi
for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || break
    sleep 0.2
done
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    die "port $port is busy (another program listens on 127.0.0.1:$port)"
fi

mkdir -p "$etc" "$demo/queue" "$demo/vmail"
chmod 0755 "$demo" "$etc" "$demo/queue"
if [ "$(id -u)" -eq 0 ]; then
    mail_owner=stork vmail_owner=vmail
    chown vmail:vmail "$demo/vmail"
else
    mail_owner=$(id -un) vmail_owner=$(id -un)
fi
touch "$demo/maillog"
[ "$(id -u)" -eq 0 ] && chown stork:stork "$demo/maillog"

cat >"$etc/main.cf" <<CF
# Stork demo instance (written by tools/demo.sh; rewritten on each run)
queue_directory = $demo/queue
daemon_directory = $top/build/libexec
command_directory = $bin
maillog_file = $demo/maillog
mail_owner = $mail_owner
myhostname = localhost
mydomain = localdomain
mydestination = localhost
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
alias_maps = hash:$etc/aliases
alias_database = hash:$etc/aliases
virtual_mailbox_domains = demo.example
virtual_mailbox_base = $demo/vmail
virtual_mailbox_maps = hash:$etc/vmailbox
virtual_mailbox_owner = $vmail_owner
CF

cat >"$etc/master.cf" <<'CF'
# service          type  private unpriv chroot wakeup maxproc command
127.0.0.1:2525     inet  n       -      y      -      -       smtpd
pickup             unix  n       -      n      60     1       pickup
qmgr               unix  n       -      n      300    1       qmgr
verify             unix  -       -      n      -      -       verify
local              unix  -       n      n      -      -       local
CF
# Services whose daemons arrive with later work, added once built.
if [ -x "$top/build/libexec/bounce" ]; then
    echo "bounce             unix  -       -      n      -      0       bounce" >>"$etc/master.cf"
fi
if [ -x "$top/build/libexec/smtp" ]; then
    echo "smtp               unix  -       -      y      -      -       smtp" >>"$etc/master.cf"
fi

# The virtual users table: address  PASSWORD_HASH:MAILDIR:QUOTA
hash=$(openssl passwd -6 demo)
printf 'demo@demo.example %s:demo.example/demo/:0\n' "$hash" >"$etc/vmailbox"
printf '# aliases(5): "name: target, target"\n' >"$etc/aliases"
"$bin/storkmap" -c "$etc" "hash:$etc/vmailbox" || die "storkmap vmailbox failed"
"$bin/storkmap" -c "$etc" -a "hash:$etc/aliases" || die "storkmap aliases failed"
chmod 0644 "$etc"/*.db

"$bin/stork" -c "$etc" check || die "the demo configuration does not check out"
"$bin/stork" -c "$etc" start || die "stork start failed (see $demo/maillog)"

ok=
for _ in $(seq 1 100); do
    if timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && read -r -t 4 g <&3 && [[ \$g == 220* ]]" 2>/dev/null; then
        ok=1
        break
    fi
    sleep 0.1
done
[ -n "$ok" ] || { tail -n 20 "$demo/maillog" >&2; die "SMTP on 127.0.0.1:$port does not answer"; }

cat <<TXT

Stork is running: SMTP on 127.0.0.1:$port, all files under $demo/
  config   $etc/main.cf, master.cf, vmailbox (virtual users), aliases
  log      $demo/maillog

Send a mail with swaks:
  swaks --server 127.0.0.1:$port --from you@example.org --to demo@demo.example
or with python:
  python3 -c 'import smtplib; smtplib.SMTP("127.0.0.1", $port).sendmail("you@example.org", ["demo@demo.example"], "Subject: hi\r\n\r\nHello Stork\r\n")'

It lands in $demo/vmail/demo.example/demo/new/ :
  ls $demo/vmail/demo.example/demo/new/

Look at the queue and the log:
  $bin/storkqueue -c $etc -p
  tail $demo/maillog

Stop it:
  $bin/stork -c $etc stop
TXT
