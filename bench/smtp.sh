#!/bin/bash
# SMTP acceptance benchmark: messages/s accepted into the queue, our tcpserver + qmail-smtpd
# (in-process and exec'd, each with qmail-queue per message and with qmail-queued) against a
# throwaway postfix (smtpd + cleanup), all fsyncing as they do by default, in one run on the
# same machine. Nothing is delivered: no qmail-send runs (messages pile up in todo/) and
# postfix runs with qmgr disabled (messages stay in incoming/). Load: postfix's smtp-source,
# SESSIONS parallel sessions, one message of SIZE payload bytes per connection, N messages
# per run.
# Between runs the queues are not emptied but moved aside (removed at the end): on ext4
# without a journal (this machine's root file system) a new inode skips every inode freed in
# the last 60 s, one inode-table lookup each, so creating files right after deleting
# thousands costs several times more, and more for whoever creates more files per message.
# CHURN=1 deletes instead (followed by SETTLE seconds), the way a busy queue lives.
#   bench/smtp.sh [BINDIR]          (default: swift build -c release, reused when up to date)
#   env: N=2000 RUNS=5 SESSIONS=10 SIZE=2048 PORT=2525 KEEP=1 (keep the work dir)
#        CHURN=1 SETTLE=6; TLS=1: also ours in-process with STARTTLS offered
# Needs root, postfix (smtp-source), a qmailq account. Prints a markdown report.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bindir=${1:-}
if [ -z "$bindir" ]; then
    (cd "$top" && swift build -c release >/dev/null)
    bindir=$(cd "$top" && swift build -c release --show-bin-path)
fi
N=${N:-2000} RUNS=${RUNS:-5} SESSIONS=${SESSIONS:-10} SIZE=${SIZE:-2048} PORT=${PORT:-2525}
for need in smtp-source postfix postsuper "$bindir/indimail" "$bindir/qmail-queue"; do
    command -v "$need" >/dev/null 2>&1 || { echo "bench: missing $need" >&2; exit 111; }
done

work=$(mktemp -d /var/tmp/smtpbench.XXXXXX)
chmod 755 "$work"
prefix=$work/prefix
server=""
cleanup() {
    for pid in $server; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    "$top/bench/postfix-instance.sh" stop "$work/postfix" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$top/scripts/install" --prefix "$prefix" --from "$bindir" >/dev/null 2>&1
queue=$work/queue
"$prefix/bin/indimail" queue-fix "$queue" >/dev/null
mkdir -p "$work/control" "$work/exec"
echo bench.local > "$work/control/me"
echo bench.local > "$work/control/rcpthosts"
# Exec'd mode: a copy of the binary is not /proc/self/exe of tcpserver, so tcpserver execs it.
cp "$prefix/bin/indimail" "$work/exec/qmail-smtpd"
smtpd=$(ls "$prefix"/*/qmail-smtpd "$prefix"/libexec/indimail/qmail-smtpd 2>/dev/null | head -n 1)

export CONTROLDIR="$work/control" SYSCONFDIR="$work" QUEUEDIR="$queue" PREFIX="$prefix"
export QMAILQUEUE="$prefix/sbin/qmail-queue" NODNSCHECK=1 PATH="$prefix/bin:$prefix/sbin:$PATH"

now() { date +%s.%N; }
# One timed smtp-source run; prints the elapsed seconds.
source_run() {
    t0=$(now)
    smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -f a@bench.local -t benchmail@bench.local "127.0.0.1:$1" \
        || { echo "bench: smtp-source failed" >&2; exit 111; }
    t1=$(now)
    echo "$t1 $t0" | awk '{ printf "%.3f", $1 - $2 }'
}
waitport() {
    i=0
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 100 ] && { echo "bench: nothing listens on $1" >&2; exit 111; }
        sleep 0.1
    done
}
ours_count() { find "$queue/todo" -type f | wc -l; }
pf_spool=$work/postfix/spool
pf_count() { find "$pf_spool/incoming" "$pf_spool/active" "$pf_spool/maildrop" -type f | wc -l; }
set_aside=0
if [ "${CHURN:-0}" = 1 ]; then
    settle() { sleep "${SETTLE:-6}"; }
    ours_clear() { find "$queue/mess" "$queue/todo" "$queue/intd" "$queue/info" -type f -delete 2>/dev/null || true; settle; }
    pf_clear() { postsuper -c "$work/postfix/etc" -d ALL >/dev/null 2>&1 || true; settle; }
else
    # A renamed queue directory keeps its inodes; a fresh one takes its place.
    ours_clear() {
        set_aside=$((set_aside + 1))
        mv "$queue" "$work/used/queue.$set_aside"
        "$prefix/bin/indimail" queue-fix "$queue" >/dev/null
    }
    # Postfix's spool stays (its daemons hold it): its queue files move out of it instead.
    pf_clear() {
        set_aside=$((set_aside + 1))
        mkdir -p "$work/used/postfix.$set_aside"
        find "$pf_spool/incoming" "$pf_spool/active" "$pf_spool/maildrop" -type f \
            -exec mv -t "$work/used/postfix.$set_aside" {} +
    }
fi
mkdir -p "$work/used"

# qmail-queued for the rows that use it (as qmailq when we are root, like qmail-queue).
"$prefix/bin/indimail" qmail-queued -c "${WORKERS:-10}" "$work/queued.sock" 2>/dev/null &
server="$! "
i=0; while [ ! -S "$work/queued.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done

# The servers run side by side and the runs alternate between them (round robin), so a
# change in machine load (shared machine) hits all of them alike.
"$prefix/bin/tcpserver" -H -R -l 0 -c 100 127.0.0.1 "$PORT" "$smtpd" 2>/dev/null &
server="$server $!"
env -u QMAILQUEUE QUEUE_SOCKET="$work/queued.sock" "$prefix/bin/tcpserver" -H -R -l 0 -c 100 127.0.0.1 "$((PORT + 1))" "$smtpd" 2>/dev/null &
server="$server $!"
"$prefix/bin/tcpserver" -H -R -l 0 -c 100 127.0.0.1 "$((PORT + 2))" "$work/exec/qmail-smtpd" 2>/dev/null &
server="$server $!"
env -u QMAILQUEUE QUEUE_SOCKET="$work/queued.sock" "$prefix/bin/tcpserver" -H -R -l 0 -c 100 127.0.0.1 "$((PORT + 3))" "$work/exec/qmail-smtpd" 2>/dev/null &
server="$server $!"
"$top/bench/postfix-instance.sh" start "$work/postfix" "$((PORT + 4))" noqmgr
labels=("ours, in-process, qmail-queue" "ours, in-process, qmail-queued" "ours, exec'd, qmail-queue" "ours, exec'd, qmail-queued" "postfix")
counts=(ours_count ours_count ours_count ours_count pf_count)
clears=(ours_clear ours_clear ours_clear ours_clear pf_clear)
if [ "${TLS:-0}" = 1 ]; then
    # STARTTLS offered (the client does not take it up): what a TLS-capable service costs.
    mkdir -p "$work/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" \
        -days 2 -subj /CN=bench.local >/dev/null 2>&1
    cat "$work/certs/key.pem" "$work/certs/cert.pem" > "$work/certs/servercert.pem"
    CERTDIR="$work/certs" STARTTLS=1 env -u QMAILQUEUE QUEUE_SOCKET="$work/queued.sock" "$prefix/bin/tcpserver" -H -R -l 0 -c 100 127.0.0.1 "$((PORT + 5))" "$smtpd" 2>/dev/null &
    server="$server $!"
    labels+=("ours, in-process, qmail-queued, STARTTLS offered"); counts+=(ours_count); clears+=(ours_clear)
fi
for i in "${!labels[@]}"; do waitport "$((PORT + i))"; done
declare -a times
for i in "${!labels[@]}"; do
    ${clears[$i]}
    source_run "$((PORT + i))" >/dev/null   # warm-up (page cache, first forks), not counted
    ${clears[$i]}
done
for r in $(seq 1 "$RUNS"); do
    for i in "${!labels[@]}"; do
        t=$(source_run "$((PORT + i))")
        sleep 0.3
        got=$(${counts[$i]})
        [ "$got" -eq "$N" ] || { echo "bench: ${labels[$i]} run $r: $got of $N messages queued" >&2; exit 111; }
        times[$i]="${times[$i]:-} $t"
        ${clears[$i]}
    done
done
results=""
for i in "${!labels[@]}"; do
    median=$(printf '%s\n' ${times[$i]} | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    rate=$(echo "$N $median" | awk '{ printf "%.0f", $1 / $2 }')
    rates=$(for t in ${times[$i]}; do echo "$N $t" | awk '{ printf "%.0f ", $1 / $2 }'; done)
    results="$results${labels[$i]}|${times[$i]}|$median|$rate|$rates
"
done

echo "## SMTP acceptance vs postfix"
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(swift --version 2>/dev/null | head -n 1 | sed 's/ (.*//'), release build."
echo "smtp-source -s $SESSIONS -m $N -l $SIZE (one message per connection), $RUNS runs each after one warm-up, alternating between the servers; fsync on in both; queues $([ "${CHURN:-0}" = 1 ] && echo "emptied by deletion (CHURN=1, ${SETTLE:-6} s settle)" || echo "moved aside") between runs; load average at the end: $(cut -d" " -f1-3 /proc/loadavg)."
echo
echo "| server | run times s | median s | msgs/s (median) | msgs/s per run | ours / postfix |"
echo "|---|---|---:|---:|---|---:|"
pfrate=$(printf '%s' "$results" | awk -F'|' '$1 == "postfix" { print $4 }')
printf '%s' "$results" | while IFS='|' read -r label times median rate rates; do
    ratio=$(echo "$rate $pfrate" | awk '{ printf "%.2fx", $1 / $2 }')
    [ "$label" = postfix ] && ratio=""
    echo "| $label |$times | $median | $rate | $rates| $ratio |"
done
