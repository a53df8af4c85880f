#!/bin/sh
# Foundation benchmarks, ours against the C peers in one run:
#   1. start-up time of a trivial command (hyperfine, no shell in between)
#   2. private memory of a live process (smaps_rollup), blocked on input
#   3. buffered fd I/O throughput through real filters (tai64n, addcr, delcr) vs C and cat
# Prints a markdown report on stdout. Needs: hyperfine, daemontools, ucspi-tcp-ipv6.
#   bench/foundation.sh [BINDIR]   (default: a release build in .build-release)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/out
mkdir -p "$out"

bindir=${1:-}
if [ -z "$bindir" ]; then
    (cd "$top" && swift build -c release --scratch-path .build-release >/dev/null)
    bindir=$(cd "$top" && swift build -c release --scratch-path .build-release --show-bin-path)
fi
bindir=$(cd "$bindir" && pwd)
ours=$bindir/indimail
tls=$bindir/indimail-tls
for need in hyperfine /usr/bin/tai64n /usr/bin/addcr "$ours" "$tls"; do
    command -v "$need" >/dev/null 2>&1 || { echo "bench: missing $need" >&2; exit 111; }
done

# Links named like installed commands, so argv[0] dispatch is what gets measured.
links=$out/links
rm -rf "$links"; mkdir -p "$links"
for c in tai64n addcr delcr; do ln -s "$ours" "$links/$c"; done

echo "## Foundation benchmarks"
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); binaries: release; indimail -static-executable, indimail-tls -static-stdlib."
echo

# 1. Start-up ---------------------------------------------------------------------------
hyperfine -N --warmup 50 --runs 1000 --export-json "$out/startup.json" \
    -n 'C true' /bin/true \
    -n 'daemontools tai64n' /usr/bin/tai64n \
    -n 'indimail tai64n' "$links/tai64n" \
    -n 'indimail tai64n (by first argument)' "$ours tai64n" \
    -n 'indimail-tls tai64n (OpenSSL, gsasl, idn2, systemd linked)' "$tls tai64n" \
    >/dev/null 2>&1
python3 - "$out/startup.json" <<'PY'
import json, sys
rows = [(r["command"], r["mean"] * 1000, r["stddev"] * 1000, r["min"] * 1000)
        for r in json.load(open(sys.argv[1]))["results"]]
base = rows[0][1]
print("### Start-up (input /dev/null, 1000 runs after 50 warm-up)")
print()
print("| program | mean ms | stddev | min ms | vs C true |")
print("|---|---:|---:|---:|---:|")
for name, mean, sd, mn in rows:
    print(f"| {name} | {mean:.2f} | {sd:.2f} | {mn:.2f} | {mean / base:.2f}x |")
print()
PY

# 2. Private memory -------------------------------------------------------------------------
private_kb() {  # program... ; prints "dirty | clean" private kB of the live process
    fifo=$out/mem.fifo
    rm -f "$fifo"; mkfifo "$fifo"
    "$@" < "$fifo" > /dev/null &
    pid=$!
    exec 3> "$fifo"
    sleep 0.3
    awk '/^Private_Dirty:/ { d = $2 } /^Private_Clean:/ { c = $2 } END { print d " | " c }' "/proc/$pid/smaps_rollup"
    exec 3>&-
    wait "$pid" 2>/dev/null || true
    rm -f "$fifo"
}
sync  # a freshly linked binary's page-cache pages would otherwise count as Private_Dirty
echo "### Private memory of a live process blocked on input (kB, from smaps_rollup)"
echo
echo "Private_Dirty is what each extra process really costs; Private_Clean is mostly program"
echo "text that is private only because no other process maps the file at that moment."
echo
echo "| program | Private_Dirty kB | Private_Clean kB |"
echo "|---|---:|---:|"
echo "| C cat | $(private_kb /bin/cat) |"
echo "| C sleep (stand-in for true, which exits too soon to measure) | $(private_kb /bin/sleep 1) |"
echo "| daemontools tai64n | $(private_kb /usr/bin/tai64n) |"
echo "| indimail tai64n | $(private_kb "$links/tai64n") |"
echo "| indimail-tls tai64n | $(private_kb "$tls" tai64n) |"
echo

# 3. Throughput of the buffered I/O path ---------------------------------------------------------
data=$out/lines.txt
if [ ! -s "$data" ]; then
    python3 -c "
import sys
line = ('x' * 95 + '\n').encode()
sys.stdout.buffer.write(b''.join(b'%05d' % (i % 100000) + line for i in range(1000000)))
" > "$data"
fi
crlf=$out/crlf.txt
[ -s "$crlf" ] || "$links/addcr" < "$data" > "$crlf"
size_mb=$(( $(stat -c %s "$data") / 1048576 ))
hyperfine --warmup 2 --runs 10 --export-json "$out/io.json" \
    -n "dd bs=64k (plain read/write loop, baseline)" "dd bs=65536 status=none < $data > /dev/null" \
    -n "daemontools tai64n" "/usr/bin/tai64n < $data > /dev/null" \
    -n "indimail tai64n" "$links/tai64n < $data > /dev/null" \
    -n "ucspi-tcp addcr" "/usr/bin/addcr < $data > /dev/null" \
    -n "indimail addcr" "$links/addcr < $data > /dev/null" \
    -n "ucspi-tcp delcr" "/usr/bin/delcr < $crlf > /dev/null" \
    -n "indimail delcr" "$links/delcr < $crlf > /dev/null" \
    >/dev/null 2>&1
python3 - "$out/io.json" "$size_mb" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
mb = int(sys.argv[2])
print(f"### Filter throughput (1,000,000 lines of 101 bytes, {mb} MB, file to /dev/null, 10 runs)")
print()
print("| program | mean s | MB/s | lines/s | C peer / ours |")
print("|---|---:|---:|---:|---:|")
pairs = {"indimail tai64n": "daemontools tai64n", "indimail addcr": "ucspi-tcp addcr",
         "indimail delcr": "ucspi-tcp delcr"}
for name, r in res.items():
    mean = r["mean"]
    ratio = ""
    if name in pairs:
        ratio = f"{res[pairs[name]]['mean'] / mean:.2f}x"
    print(f"| {name} | {mean:.3f} | {mb / mean:.0f} | {1e6 / mean:,.0f} | {ratio} |")
print()
print("A ratio above 1 means ours is faster than the C peer.")
PY
