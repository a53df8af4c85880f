#!/bin/sh
# Network-layer benchmarks (tcpserver connections/s, TLS handshakes/s), ours against
# Debian's ucspi-tcp-ipv6 tcpserver and stunnel4, in one run. Prints a markdown report.
#   bench/tcpserver.sh [BINDIR] [-- tcpserver.py options]   (default: a release build in .build-release)
# Needs: ucspi-tcp-ipv6 (/usr/bin/tcpserver, /usr/bin/addcr), stunnel4, openssl.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=${1:-}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ -z "$bindir" ]; then
    (cd "$top" && swift build -c release --scratch-path .build-release >/dev/null)
    bindir=$(cd "$top" && swift build -c release --scratch-path .build-release --show-bin-path)
fi
for need in /usr/bin/tcpserver /usr/bin/addcr stunnel4 openssl "$bindir/indimail-tls"; do
    command -v "$need" >/dev/null 2>&1 || { echo "bench: missing $need" >&2; exit 111; }
done
echo "## Network benchmarks (issue: network layer)"
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); release build; uptime at start: $(uptime | sed 's/.*load/load/')."
echo
exec python3 "$top/bench/tcpserver.py" "$bindir" "$@"
