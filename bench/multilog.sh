#!/bin/sh
# multilog benchmarks, ours against daemontools' multilog and s6-log in one run:
#   1. throughput: 1,000,000 lines of 101 bytes through `t s16777215 n10 ./dir`,
#      stdin from a file and from a pipe (hyperfine, the log directory removed before each run)
#   2. peak memory of the same run (/usr/bin/time -f %M, max RSS in kB)
#   3. private memory of a live logger blocked on input (smaps_rollup)
# Prints a markdown report on stdout. Needs: hyperfine, GNU time, daemontools, s6.
#   bench/multilog.sh [BINDIR]   (default: a release build in .build-release)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/out/multilog
mkdir -p "$out"
runs=${RUNS:-10}

bindir=${1:-}
if [ -z "$bindir" ]; then
    (cd "$top" && swift build -c release --scratch-path .build-release >/dev/null)
    bindir=$(cd "$top" && swift build -c release --scratch-path .build-release --show-bin-path)
fi
bindir=$(cd "$bindir" && pwd)
links=$out/links
rm -rf "$links"; mkdir -p "$links"
ln -s "$bindir/indimail" "$links/multilog"
ours=$links/multilog
djb=/usr/bin/multilog
s6=/usr/bin/s6-log
for need in hyperfine /usr/bin/time "$djb" "$s6" "$bindir/indimail"; do
    command -v "$need" >/dev/null 2>&1 || { echo "bench: missing $need" >&2; exit 111; }
done

data=$out/lines.txt
if [ ! -s "$data" ]; then
    python3 -c "
import sys
line = ('x' * 91 + '\n').encode()
sys.stdout.buffer.write(b''.join(b'%08d ' % i + line for i in range(1000000)))
" > "$data"
fi
lines=$(wc -l < "$data")
bytes=$(stat -c %s "$data")
dir=$out/log
# The same script for all three: s6-log reads it the same way (its t applies to the action
# that follows). s6-log -b blocks reading while it has unflushed output, as multilog does.
script="t s16777215 n10 $dir"

echo "## multilog benchmarks"
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); file system of the log: $(df -T "$out" | awk 'NR==2 { print $2 }'); ours: release, -static-executable; daemontools $(dpkg-query -W -f '${Version}' daemontools), s6 $(dpkg-query -W -f '${Version}' s6)."
echo

# 1. Throughput --------------------------------------------------------------------------------
hyperfine --warmup 1 --runs "$runs" --prepare "rm -rf $dir" --export-json "$out/throughput.json" \
    -n "daemontools multilog, file" "$djb $script < $data" \
    -n "indimail multilog, file" "$ours $script < $data" \
    -n "s6-log, file" "$s6 $script < $data" \
    -n "s6-log -b, file" "$s6 -b $script < $data" \
    -n "daemontools multilog, pipe" "cat $data | $djb $script" \
    -n "indimail multilog, pipe" "cat $data | $ours $script" \
    -n "s6-log, pipe" "cat $data | $s6 $script" \
    -n "s6-log -b, pipe" "cat $data | $s6 -b $script" \
    >/dev/null 2>&1

# Every implementation must have logged every line (stamps add 26 bytes to each).
check() {
    got=$(cat "$dir"/@* "$dir"/current 2>/dev/null | wc -l)
    [ "$got" -eq "$lines" ] || { echo "bench: $1 logged $got of $lines lines" >&2; exit 111; }
}
# 2. Peak memory (one run each, after the timed ones) -------------------------------------------
peak() {  # name command... ; prints max RSS kB
    rm -rf "$dir"
    /usr/bin/time -f %M -o "$out/peak" "$@" < "$data"
    check "$1"
    cat "$out/peak"
}
peak_djb=$(peak "$djb" t s16777215 n10 "$dir")
peak_ours=$(peak "$ours" t s16777215 n10 "$dir")
peak_s6=$(peak "$s6" t s16777215 n10 "$dir")
peak_s6b=$(peak "$s6" -b t s16777215 n10 "$dir")

# 3. Private memory of a live logger ---------------------------------------------------------------
private_kb() {  # program... ; prints "dirty | clean" private kB of the live process
    fifo=$out/mem.fifo
    rm -f "$fifo"; mkfifo "$fifo"
    rm -rf "$dir"
    "$@" < "$fifo" &
    pid=$!
    exec 3> "$fifo"
    head -n 1000 "$data" >&3
    sleep 0.5
    awk '/^Private_Dirty:/ { d = $2 } /^Private_Clean:/ { c = $2 } END { print d " | " c }' "/proc/$pid/smaps_rollup"
    exec 3>&-
    wait "$pid" 2>/dev/null || true
    rm -f "$fifo"
}
sync  # a freshly linked binary's page-cache pages would otherwise count as Private_Dirty
live_djb=$(private_kb "$djb" t s16777215 n10 "$dir")
live_ours=$(private_kb "$ours" t s16777215 n10 "$dir")
live_s6=$(private_kb "$s6" t s16777215 n10 "$dir")

python3 - "$out/throughput.json" "$lines" "$bytes" "$runs" \
    "$peak_djb" "$peak_ours" "$peak_s6" "$peak_s6b" "$live_djb" "$live_ours" "$live_s6" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
lines, size, runs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
peaks = dict(zip(["daemontools multilog", "indimail multilog", "s6-log", "s6-log -b"], sys.argv[5:9]))
live = dict(zip(["daemontools multilog", "indimail multilog", "s6-log"], sys.argv[9:12]))
print(f"### Throughput: {lines:,} lines of {size // lines} bytes ({size / 1e6:.0f} MB in, "
      f"{(size + 26 * lines) / 1e6:.0f} MB logged), `t s16777215 n10 ./dir`, {runs} runs")
print()
print("| program, input | mean s | stddev | lines/s | vs daemontools | peak RSS kB |")
print("|---|---:|---:|---:|---:|---:|")
for source in ["file", "pipe"]:
    base = res[f"daemontools multilog, {source}"]["mean"]
    for prog in ["daemontools multilog", "indimail multilog", "s6-log", "s6-log -b"]:
        r = res[f"{prog}, {source}"]
        peak = peaks[prog] if source == "file" else ""
        print(f"| {prog}, {source} | {r['mean']:.3f} | {r['stddev']:.3f} | {lines / r['mean']:,.0f} | "
              f"{base / r['mean']:.2f}x | {peak} |")
print()
print("\"vs daemontools\" above 1 means faster than daemontools' multilog on the same input.")
print("Peak RSS is from the file runs (/usr/bin/time %M); it counts program text mapped from")
print("the page cache, so it is mostly binary size: see the private memory below.")
print()
print("### Private memory of a live logger blocked on input, after 1000 lines (kB, smaps_rollup)")
print()
print("| program | Private_Dirty kB | Private_Clean kB |")
print("|---|---:|---:|")
for prog, value in live.items():
    print(f"| {prog} | {value} |")
print()
PY
rm -rf "$dir"
