#!/usr/bin/env bash
# run.sh — `make fuzz`: build every libFuzzer target in tests/fuzz/ with
# ASan+UBSan and run each for FUZZ_SECONDS (default 60). Bounded; stops by itself.
# FUZZ_TARGETS="fuzz_reqhead fuzz_prescan" runs only those.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
command -v clang >/dev/null || { apt-get update -qq && apt-get install -y -qq clang; }
make build/embedded.c >/dev/null
out=build/fuzz
mkdir -p "$out"
srcs=$(ls server/*.c | grep -v -e msregd.c -e msreg.c)
flags="-g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags libsodium jansson libpq libmicrohttpd)"
libs="$(pkg-config --libs libsodium jansson libpq libmicrohttpd inih libsystemd libcrypto libcurl) -lm -pthread"
fail=0
targets=tests/fuzz/fuzz_*.c
[ -n "${FUZZ_TARGETS:-}" ] && targets=$(for n in $FUZZ_TARGETS; do echo tests/fuzz/$n.c; done)
for t in $targets; do
	name=$(basename "$t" .c)
	clang $flags "$t" $srcs build/embedded.c -o "$out/$name" $libs
	mkdir -p "$out/corpus-$name"
	echo "== $name (${secs}s)"
	if ! "$out/$name" -max_total_time="$secs" -print_final_stats=1 "$out/corpus-$name" \
	    2>"$out/$name.log"; then
		tail -40 "$out/$name.log"; fail=1
	else
		grep -E 'stat::number_of_executed_units|Done' "$out/$name.log" | tail -2
	fi
done
exit $fail
