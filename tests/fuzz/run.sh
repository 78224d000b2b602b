#!/bin/sh
# run.sh - run one libFuzzer target for a bounded time (see README.md)
#
# Usage: tests/fuzz/run.sh BUILD_DIR NAME SECONDS [libFuzzer options...]
# BUILD_DIR was configured with -DCMAKE_C_COMPILER=clang -DSTORK_FUZZ=ON.
# New inputs go to BUILD_DIR/tests/fuzz/work/NAME (the checked-in
# corpus_NAME is read, never written); crashes to
# BUILD_DIR/tests/fuzz/artifacts/NAME-crash-*. A dictionary is used when
# tests/fuzz/NAME.dict exists; the conf and master_cf dictionaries are
# made from lib/config/params*.def so they follow the declared names.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 BUILD_DIR NAME SECONDS [options]" >&2; exit 2; }
build=$1 name=$2 secs=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tests/fuzz/fuzz_$name
work=$build/tests/fuzz/work/$name
art=$build/tests/fuzz/artifacts
[ -x "$bin" ] || { echo "$bin: not built (cmake --build $build --target fuzz_$name)" >&2; exit 2; }
mkdir -p "$work" "$art"

dict=
case $name in
conf|master_cf)
    dict=$build/tests/fuzz/$name.dict
    {
        grep -ho '^PARAM("[a-z_0-9]*"' "$here"/../../lib/config/params*.def | sed 's/^PARAM(//'
        for w in '" = "' '"$"' '"${"' '"$("' '"}"' '")"' '"?"' '":"' '"%%"' '"\x0a  "' '"#"' \
                 '"inet"' '"unix"' '" - "' '" n "' '" y "' '"-o "' '"="' '"60?"' '"[::1]:"'; do
            printf '%s\n' "$w"
        done
    } > "$dict"
    ;;
*)
    [ -f "$here/$name.dict" ] && dict=$here/$name.dict
    ;;
esac

exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$art/$name-" ${dict:+-dict="$dict"} "$@" \
    "$work" "$here/corpus_$name"
