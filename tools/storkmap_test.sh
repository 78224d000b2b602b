#!/bin/sh
# storkmap_test.sh BINDIR - storkmap and newaliases end to end on real files:
# build, query, list, errors with PATH:LINE, an unchanged table after a bad
# source, the source's mode, and newaliases building $alias_database.
set -u
bin=$1
tmp=$(mktemp -d /tmp/storkmap_test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then passes=$((passes + 1)); else
        fails=$((fails + 1)); echo "FAIL: $1: expected [$2] got [$3]" >&2; fi
}

printf '# virtual\nUser@Example.COM  secret:example.com/user/:10m\nsales@example.com user@example.com\n' >"$tmp/virtual"
chmod 640 "$tmp/virtual"
"$bin/storkmap" "hash:$tmp/virtual"
check "build exit" 0 $?
check "db mode" 640 "$(stat -c %a "$tmp/virtual.db")"
check "query folded" "secret:example.com/user/:10m" "$("$bin/storkmap" -q USER@example.com "hash:$tmp/virtual")"
"$bin/storkmap" -q nobody@example.com "$tmp/virtual" >/dev/null
check "query miss exit" 1 $?
check "list" "sales@example.com	user@example.com
user@example.com	secret:example.com/user/:10m" "$("$bin/storkmap" -s "$tmp/virtual" | sort)"
check "query stdin" "sales@example.com	user@example.com" \
    "$(printf 'x\nsales@example.com\n' | "$bin/storkmap" -q - "$tmp/virtual")"

printf 'ok@example.com v\nbroken\n' >"$tmp/virtual"
err=$("$bin/storkmap" "$tmp/virtual" 2>&1)
check "bad source exit" 1 $?
case $err in *"$tmp/virtual:2: expected format: key whitespace value"*) passes=$((passes + 1)) ;;
    *) fails=$((fails + 1)); echo "FAIL: error text: $err" >&2 ;; esac
check "unchanged after error" "user@example.com" "$("$bin/storkmap" -q sales@example.com "$tmp/virtual")"

printf 'alias_database = hash:$config_directory/aliases\n' >"$tmp/main.cf"
printf 'postmaster: root\nstaff: alice,\n  bob\n' >"$tmp/aliases"
"$bin/newaliases" -c "$tmp"
check "newaliases exit" 0 $?
check "alias list" "alice, bob" "$("$bin/storkmap" -q staff "hash:$tmp/aliases")"
STORK_CONFIG_DIR=$tmp "$bin/newaliases"
check "newaliases env exit" 0 $?
printf 'nocolon here\n' >"$tmp/aliases"
"$bin/newaliases" -c "$tmp" 2>/dev/null
check "newaliases bad exit" 1 $?
check "aliases -a -s" "postmaster: root
staff: alice, bob" "$("$bin/storkmap" -a -s "$tmp/aliases" | sort)"
"$bin/storkmap" -q x "nosuch:$tmp/x" 2>/dev/null
check "bad type exit" 2 $?

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
