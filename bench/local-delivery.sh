#!/bin/sh
# Local delivery throughput, ours against postfix in the same run, fsync on in both:
# inject N messages through each system's sendmail (one process per message, as cron and
# scripts do) and time until all N are in the recipient's Maildir/new.
#   bench/local-delivery.sh [PREFIX]      (default: build and install into bench/out/prefix)
# Needs root (both deliver as the user `benchmail`), Debian's postfix, python3.
# Prints a markdown table on stdout.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/out/local
n=${MESSAGES:-1000}
runs=${RUNS:-3}
mkdir -p "$out"
prefix=${1:-$top/bench/out/prefix}
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 111; }

# Accounts: the recipient and the qmail users the delivery side runs as.
id benchmail >/dev/null 2>&1 || useradd -m -d /var/tmp/benchmail -s /usr/sbin/nologin benchmail
getent group qmail >/dev/null || groupadd qmail
getent group nofiles >/dev/null || groupadd nofiles
for u in qmaild qmaill qmailp qmailq qmailr qmails alias; do
    id "$u" >/dev/null 2>&1 || useradd -r -g qmail -d /var/tmp -s /usr/sbin/nologin "$u"
done
home=/var/tmp/benchmail
# After the accounts: scripts/install makes qmail-queue setuid qmailq only when qmailq exists.
[ -n "${1:-}" ] || "$top/scripts/install" --prefix "$prefix" >/dev/null

# Our system: control files, one queue, qmail-start delivering to ./Maildir/.
sys=$out/indimail
rm -rf "$sys"; mkdir -p "$sys/control"
echo bench.local > "$sys/control/me"
echo bench.local > "$sys/control/locals"
echo bench.local > "$sys/control/defaultdomain"
echo bench.local > "$sys/control/defaulthost"
ourenv="SYSCONFDIR=$sys QMAILHOME=$sys QUEUEDIR=$sys/queue PREFIX=$prefix PATH=$prefix/bin:$prefix/sbin:$prefix/libexec/indimail:/usr/bin:/bin"
env $ourenv "$prefix/sbin/queue-fix" "$sys/queue" >/dev/null

# qmail-local delivers only into an existing Maildir (postfix creates its own).
fresh_maildir() {
    rm -rf "$home/Maildir"
    mkdir -p "$home/Maildir/tmp" "$home/Maildir/new" "$home/Maildir/cur"
    chown -R benchmail "$home/Maildir"
    chmod -R 700 "$home/Maildir"
}

# Injects N messages with SENDMAIL (a command line); prints the seconds until all are
# delivered and, after a space, the seconds the injections alone took.
timed_run() {
    python3 - "$n" "$home/Maildir/new" "$@" <<'PY'
import os, subprocess, sys, time
n, new, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
body = b"Subject: bench\n\n" + b"x" * 2000 + b"\n"
start = time.monotonic()
for i in range(n):
    subprocess.run(cmd + ["benchmail@bench.local"], input=body, check=True)
injected = time.monotonic() - start
def delivered():
    try: return len(os.listdir(new))
    except FileNotFoundError: return 0
deadline = start + 600
while time.monotonic() < deadline:
    if delivered() >= n: break
    time.sleep(0.005)
else:
    sys.exit("timed out: %d of %d delivered" % (delivered(), n))
print("%.3f %.3f" % (time.monotonic() - start, injected))
PY
}

ours_start() {
    env - $ourenv "$prefix/sbin/qmail-start" ./Maildir/ > "$out/indimail.log" 2>&1 &
    echo $! > "$out/indimail.pid"
    sleep 1
}
ours_stop() { kill "$(cat "$out/indimail.pid")" 2>/dev/null || true; sleep 1; }

pf=$out/postfix
"$top/bench/postfix-instance.sh" stop "$pf"; rm -rf "$pf"
"$top/bench/postfix-instance.sh" start "$pf" 10026
trap '"$top/bench/postfix-instance.sh" stop "$pf"; ours_stop' EXIT

ours_start
echo "| run | indimail (s) | of which injecting | postfix (s) | of which injecting | ratio postfix/indimail |"
echo "|---|---|---|---|---|---|"
i=1
while [ $i -le "$runs" ]; do
    fresh_maildir
    a=$(export $ourenv; timed_run "$prefix/bin/sendmail" 2>>"$out/errors") || { echo "ours failed" >&2; cat "$out/errors" >&2; exit 1; }
    rm -rf "$home/Maildir"
    b=$(timed_run /usr/sbin/sendmail -C "$pf/etc" 2>>"$out/errors")
    ta=${a% *} ia=${a#* } tb=${b% *} ib=${b#* }
    echo "| $i | $ta | $ia | $tb | $ib | $(python3 -c "print('%.2f' % ($tb / $ta))") |"
    i=$((i + 1))
done
echo
echo "$n messages of ~2 kB each, one sendmail process per message, one after another; time until"
echo "all are in Maildir/new (and the part of it spent running the $n sendmail processes)."
