#!/usr/bin/env bash
# run.sh DIR — the real validators, over what tests/it_validate.c recorded from a
# live msregd in DIR:
#   1. redocly lint DIR/openapi.json       (the document msregd served; @redocly/cli)
#   2. check-responses.cjs                 (every recorded response against that
#                                           document's schemas; ajv)
#   3. promtool check metrics < DIR/metrics.txt   (Debian's prometheus package)
#   4. systemd-analyze verify deploy/msregd.service (with ExecStart pointing at
#      the built bin/, since verify insists that the binaries exist)
# The npm packages are pinned by package-lock.json and installed into the
# gitignored tests/validate/node_modules by install.sh. Exit 0 when all pass.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:?usage: run.sh DIR}
fail=0

"$here/install.sh" || { echo "validate: cannot install the npm validators" >&2; exit 1; }

echo "== redocly lint (served document)"
if ! (cd "$here" && ./node_modules/.bin/redocly lint --config redocly.yaml \
    --format=stylish "$dir/openapi.json") 2>&1; then
	echo "FAILED: redocly lint" >&2
	fail=1
fi

echo "== live responses against the OpenAPI schemas"
if ! node "$here/check-responses.cjs" "$dir/openapi.json" "$dir/responses.jsonl"; then
	echo "FAILED: responses do not match the OpenAPI document" >&2
	fail=1
fi

echo "== promtool check metrics"
if ! promtool check metrics < "$dir/metrics.txt"; then
	echo "FAILED: promtool check metrics" >&2
	fail=1
fi

echo "== systemd-analyze verify deploy/msregd.service"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/#$root/bin/#g" "$root/deploy/msregd.service" > "$tmp/msregd.service"
if ! out=$(systemd-analyze verify "$tmp/msregd.service" 2>&1) || [ -n "$out" ]; then
	echo "$out"
	echo "FAILED: systemd-analyze verify" >&2
	fail=1
fi
systemd-analyze security --offline=yes "$tmp/msregd.service" 2>/dev/null | tail -1

exit $fail
