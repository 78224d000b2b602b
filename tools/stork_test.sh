#!/usr/bin/env bash
# stork_test.sh - `stork` and `storkconf` against a temp instance.
# usage: stork_test.sh BIN_DIR LIBEXEC_DIR TEST_DAEMON
set -u
bin=$1 libexec=$2 daemon=$3
t=$(mktemp -d) fails=0
trap '"$bin/stork" -c "$t/conf" stop >/dev/null 2>&1; rm -rf "$t"' EXIT
ok() { if eval "$2"; then echo "ok    $1"; else echo "FAIL  $1"; fails=$((fails+1)); fi; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mkdir "$t/conf"
cat > "$t/conf/main.cf" <<EOT
queue_directory = $t/queue
daemon_directory = $libexec
maillog_file = $t/maillog
myhostname = mx.example.net
EOT
echo "127.0.0.1:$port inet n - n - - $daemon" > "$t/conf/master.cf"
s="$bin/stork -c $t/conf"
ok "check passes" "$s check 2>/dev/null"
ok "status: not running, exit 1" "! $s status 2>&1 | grep -q 'is running'"
ok "start" "$s start 2>/dev/null"
ok "status: running with PID" "$s status 2>&1 | grep -q 'the Stork mail system is running: PID: [0-9]'"
ok "second start refused" "! $s start 2>/dev/null"
ok "service answers" "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port; head -1 <&3' | grep -q hello"
ok "reload" "$s reload 2>/dev/null"
ok "stop" "$s stop 2>/dev/null"
ok "status after stop: exit 1" "! $s status 2>/dev/null"
c="$bin/storkconf -c $t/conf"
ok "storkconf name" "[ \"\$($c mydomain)\" = 'mydomain = example.net' ]"
ok "storkconf -h" "[ \"\$($c -h myorigin)\" = 'mx.example.net' ]"
ok "storkconf -n" "$c -n | grep -q '^queue_directory = $t/queue\$' && [ \$($c -n | wc -l) = 4 ]"
ok "storkconf -d" "$c -d myorigin | grep -q '^myorigin = \$myhostname\$'"
ok "storkconf unknown" "! $c nosuch 2>&1 && $c nosuch 2>&1 | grep -q 'storkconf: warning: unknown parameter: nosuch'"
ok "storkconf sorted" "$c | cut -d' ' -f1 | LC_ALL=C sort -c"
ok "storkconf -M" "$c -M | grep -q '^127.0.0.1:$port inet'"
printf 'bogus = 1\nmessage_size_limit = big\n' >> "$t/conf/main.cf"
out=$($s check 2>&1)
ok "check reports file:line:key" "echo \"\$out\" | grep -q 'main.cf:5: unknown parameter name: bogus' && echo \"\$out\" | grep -q 'main.cf:6: message_size_limit: bad size value'"
ok "start refused on bad config" "! $s start 2>/dev/null && ! $s status 2>/dev/null"
echo "$fails failed"
[ "$fails" = 0 ]
