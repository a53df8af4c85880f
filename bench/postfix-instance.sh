#!/bin/sh
# A throwaway postfix instance for benchmarks: its own config, spool and data dirs under DIR,
# SMTP on 127.0.0.1:PORT, local delivery to Maildir/ in the recipients' homes (fsync on, as
# postfix does by default). Debian's postfix package must be installed; run as root.
#   bench/postfix-instance.sh start DIR PORT [noqmgr]   prints nothing, exits 0 when running;
#       noqmgr: the queue manager is disabled, so accepted mail stays in incoming/ (acceptance
#       benchmarks: nothing is delivered, as a qmail queue with no qmail-send running). Without
#       a qmgr nobody hands cleanup its flow-control tokens, so in_flow_delay is 0: otherwise
#       every message would wait 1 s for a token that never comes.
#   bench/postfix-instance.sh stop DIR
set -eu
cmd=$1 dir=$2
case $cmd in
start)
    port=$3
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
    chown postfix "$dir/data"
    cp /etc/postfix/master.cf "$dir/etc/master.cf"
    # Only our SMTP listener: the stock "smtp inet" line moves to the bench port.
    sed -i "s/^smtp      inet/127.0.0.1:$port      inet/" "$dir/etc/master.cf"
    cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.local
mydomain = bench.local
mydestination = bench.local, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
home_mailbox = Maildir/
alias_maps =
alias_database =
local_recipient_maps =
biff = no
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
default_process_limit = 100
CF
    [ "${4:-}" = noqmgr ] && printf 'master_service_disable = qmgr.unix\nin_flow_delay = 0\n' >> "$dir/etc/main.cf"
    # postdrop (setgid) only accepts config dirs the default config lists.
    # Debian leaves /etc/postfix/main.cf absent until configured: start one that does nothing.
    [ -f /etc/postfix/main.cf ] || printf 'compatibility_level = 3.6\n' > /etc/postfix/main.cf
    current=$(postconf -h alternate_config_directories 2>/dev/null || true)
    case " $current " in *" $dir/etc "*) ;; *)
        postconf -e "alternate_config_directories = $current $dir/etc" ;;
    esac
    postfix -c "$dir/etc" check >/dev/null 2>&1 || true
    postfix -c "$dir/etc" start >/dev/null 2>&1
    ;;
stop)
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    ;;
*) echo "usage: $0 start DIR PORT [noqmgr] | stop DIR" >&2; exit 100 ;;
esac
