#!/usr/bin/env bash
# A disposable single-node Ceph cluster with radosgw: the real S3 server the S3 tests run against.
# One mon, one OSD and one radosgw, no mgr, no cephx, one replica; every socket on 127.0.0.1 and
# every file (config, data, logs, pids, sockets) under one directory.
#
#   scripts/ceph-s3.sh start DIR [BUCKET...]
#                                        new cluster in DIR (a previous cluster there is stopped
#                                        and wiped; any other non-empty DIR is refused), with
#                                        the named buckets created (curl --aws-sigv4); prints
#                                        S3_ENDPOINT=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#                                        AWS_REGION=... on one line and writes them to DIR/s3.env
#   scripts/ceph-s3.sh stop DIR [--rm]   stop the daemons started in DIR (radosgw, OSD, mon);
#                                        --rm then deletes DIR
#   scripts/ceph-s3.sh stop-rgw DIR      stop radosgw only (the S3 server goes away)
#   scripts/ceph-s3.sh start-rgw DIR     start radosgw again on its port, wait until it serves
#   scripts/ceph-s3.sh status DIR        exit 0 when every daemon runs and radosgw answers
#
# Environment (all optional):
#   CEPH_OBJECTSTORE     memstore (default: objects in the OSD's RAM) or bluestore (a sparse file
#                        under DIR/osd; for tests that write more than RAM comfortably holds)
#   CEPH_BLUESTORE_SIZE  size of that sparse file (default 20G)
#   CEPH_MEMSTORE_SIZE   capacity memstore reports, bytes (default 16 GiB; RAM is used as written)
#   CEPH_READY_TIMEOUT   seconds any single wait may take (default 120)
#   CEPH_MON_PORT, CEPH_RGW_PORT  fixed ports instead of free ones picked at random
#   CEPH_S3_ACCESS_KEY, CEPH_S3_SECRET_KEY  credentials of the S3 user, by default the fixed
#                        DOSTESTACCESSKEY0001 / dostestsecretkey000000000000000000000001
#
# Tests read DIR/s3.env: S3_ENDPOINT=http://127.0.0.1:PORT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# and AWS_REGION=us-east-1, one KEY=VALUE a line (path-style requests, plain http).
#
# Daemons run in the foreground (-f) in their own sessions (setsid), so they outlive this script:
# always pair a start with a stop. Their pids are in DIR/pids/, their logs in DIR/log/. Stopping
# signals a recorded pid only while /proc/PID/cmdline still names DIR/ceph.conf.
set -euo pipefail

PROG=ceph-s3.sh
TIMEOUT=${CEPH_READY_TIMEOUT:-120}
OBJECTSTORE=${CEPH_OBJECTSTORE:-memstore}
ACCESS_KEY=${CEPH_S3_ACCESS_KEY:-DOSTESTACCESSKEY0001}
SECRET_KEY=${CEPH_S3_SECRET_KEY:-dostestsecretkey000000000000000000000001}
REGION=us-east-1
MARKER_TEXT="cluster directory of dos scripts/ceph-s3.sh"
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)
DAEMONS_STOP_ORDER=(rgw osd mon)

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    FAILURE=$*
    say "error: $*"
    exit 1
}
usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0" >&2
    exit 2
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
T0=$(now_ms)
elapsed() { local ms=$(($(now_ms) - T0)); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

# ---------------------------------------------------------------------------------------------
# The cluster directory

# set_dir ARG: DIR (absolute, canonical) and the paths derived from it.
set_dir() {
    [[ -n ${1:-} ]] || usage
    DIR=$(realpath -m -- "$1")
    [[ $DIR != / ]] || die "refusing to use / as the cluster directory"
    # Values in ceph.conf are not quoted: keep to characters its parser takes literally.
    [[ $DIR =~ ^[A-Za-z0-9_./+@,:-]+$ ]] \
        || die "$DIR: only letters, digits and _ . / + @ , : - are supported in the directory name"
    CONF=$DIR/ceph.conf
    PIDS=$DIR/pids
    LOGS=$DIR/log
    MARKER=$DIR/.ceph-s3
}

is_cluster_dir() { [[ -f $MARKER ]]; }

require_cluster_dir() {
    is_cluster_dir || die "$DIR is not a cluster directory made by $PROG start"
}

# rgw_port_of_conf: the port radosgw was configured with.
rgw_port_of_conf() {
    local port
    [[ -f $CONF ]] || die "$CONF is missing: start the cluster again"
    port=$(sed -n 's/^rgw frontends = beast endpoint=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$CONF")
    [[ -n $port ]] || die "no radosgw endpoint in $CONF"
    echo "$port"
}

# ---------------------------------------------------------------------------------------------
# Processes

# pid_of NAME: the recorded pid of daemon NAME (mon, osd, rgw), empty when none.
pid_of() {
    local f=$PIDS/$1.pid pid=
    [[ -f $f ]] && read -r pid <"$f"
    echo "$pid"
}

# owns_pid PID: PID is alive and was started with this cluster's ceph.conf. A zombie has an
# empty cmdline and a recycled pid names another command line: neither counts.
owns_pid() {
    local arg
    [[ ${1:-} =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] || return 1
    while IFS= read -r -d '' arg; do
        [[ $arg == "$CONF" ]] && return 0
    done 2>/dev/null <"/proc/$1/cmdline"
    return 1
}

running() { owns_pid "$(pid_of "$1")"; }

# launch NAME COMMAND...: run a daemon in the foreground in a session of its own, with no
# descriptor of ours (a caller reading our stdout must not wait for the daemons), pid recorded.
launch() {
    local name=$1
    shift
    setsid "$@" -f -c "$CONF" </dev/null >>"$LOGS/$name.out" 2>&1 &
    echo $! >"$PIDS/$name.pid"
    LAUNCHED+=("$name")
    say "$(elapsed) started $name: $1 (pid $!)"
}

# halt NAME: TERM the recorded daemon, KILL it if it is still there ~10 s later. Fails, keeping
# the pid file for another try, only when even KILL did not end it.
halt() {
    local name=$1 pid i
    pid=$(pid_of "$name")
    [[ -n $pid ]] || return 0
    if owns_pid "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            owns_pid "$pid" || break
            sleep 0.1
        done
        if owns_pid "$pid"; then
            say "$name (pid $pid) did not exit within 10 s of TERM: sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                owns_pid "$pid" || break
                sleep 0.1
            done
            if owns_pid "$pid"; then
                say "$name (pid $pid) is still there after KILL"
                return 1
            fi
        fi
        say "stopped $name (pid $pid)"
    else
        say "$name (pid $pid) was not running"
    fi
    rm -f "$PIDS/$name.pid"
}

halt_all() {
    local name ok=0
    for name in "${DAEMONS_STOP_ORDER[@]}"; do halt "$name" || ok=1; done
    return "$ok"
}

# ---------------------------------------------------------------------------------------------
# Probes and waiting

# ceph_cli ARGS...: the ceph CLI, bounded in time (with no mgr some commands never return).
ceph_cli() { timeout -k 5 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }

osd_is_up() { ceph_cli osd stat --format json 2>/dev/null | grep -q '"num_up_osds":1[,}]'; }

# http_status PORT: the status code of GET / on 127.0.0.1:PORT, spoken with bash's /dev/tcp.
http_status() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$1" >&3
        read -r -t 10 _ code _ <&3 || exit 1
        echo "$code"
    ) 2>/dev/null
}

rgw_answers() { [[ $(http_status "$1") == 200 ]]; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR LOW HIGH: set VAR to a port in [LOW, HIGH) nothing listens on, chosen at random
# so that clusters started side by side rarely reach for the same one.
pick_port() {
    local low=$2 high=$3 p i
    for ((i = 0; i < 500; i++)); do
        p=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
        if ! port_in_use "$p"; then
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free port in [$low, $high)"
}

# all_recorded_alive: fail (naming it) when a daemon with a pid file has exited.
all_recorded_alive() {
    local f name
    for f in "$PIDS"/*.pid; do
        [[ -e $f ]] || continue
        name=${f##*/}
        name=${name%.pid}
        owns_pid "$(pid_of "$name")" || die "$name exited (see $LOGS/)"
    done
}

# wait_until WHAT CHECK...: poll CHECK until it succeeds, at most CEPH_READY_TIMEOUT seconds,
# giving up at once when one of the daemons has died.
wait_until() {
    local what=$1 deadline delay=0.05
    shift
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until "$@" >/dev/null 2>&1; do
        all_recorded_alive
        (($(now_ms) < deadline)) || die "$what: not within ${TIMEOUT}s (CEPH_READY_TIMEOUT)"
        sleep "$delay"
        case $delay in 0.05) delay=0.1 ;; 0.1) delay=0.2 ;; *) ;; esac
    done
    say "$(elapsed) $what"
}

# On a failed start or start-rgw: show the end of every log, stop what this run launched.
report_and_clean_up() {
    local rc=$? f name
    trap - EXIT
    if ((rc != 0)); then
        for f in "$LOGS"/*; do
            [[ -f $f && -s $f ]] || continue
            printf '%s: ---- last lines of %s\n' "$PROG" "$f" >&2
            tail -n 25 "$f" >&2
        done
        for name in "${DAEMONS_STOP_ORDER[@]}"; do
            if [[ " ${LAUNCHED[*]} " == *" $name "* ]]; then halt "$name" || true; fi
        done
        say "failed after $(elapsed): ${FAILURE:-exit status $rc}"
        exit 1
    fi
    exit 0
}

arm_cleanup() {
    LAUNCHED=()
    trap report_and_clean_up EXIT
    trap 'FAILURE="line $LINENO failed: $BASH_COMMAND"; say "$FAILURE"' ERR
    trap 'FAILURE=interrupted; exit 1' INT TERM HUP
}

# ---------------------------------------------------------------------------------------------
# Set-up pieces

ensure_packages() {
    local missing=() cmd sudo=()
    for cmd in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    say "${missing[*]} not found: installing the Debian packages ${PACKAGES[*]}"
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || die "not root and no sudo: cannot install ${PACKAGES[*]}"
        sudo=(sudo)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
    "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" >&2 \
        || { "${apt[@]}" update >&2 && "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" >&2; } \
        || die "apt-get could not install ${PACKAGES[*]}"
    for cmd in "${missing[@]}"; do
        command -v "$cmd" >/dev/null || die "$cmd still missing after installing ${PACKAGES[*]}"
    done
}

ensure_tools() {
    local cmd
    for cmd in setsid timeout realpath sed grep tail curl; do
        command -v "$cmd" >/dev/null || die "$cmd is required"
    done
}

# fresh_dir: an empty DIR, after stopping and wiping a previous cluster that lived there.
fresh_dir() {
    if [[ -e $DIR && ! -d $DIR ]]; then
        die "$DIR exists and is not a directory"
    fi
    if [[ -d $DIR ]] && [[ -n $(ls -A -- "$DIR") ]]; then
        is_cluster_dir || die "$DIR is not empty and not a cluster directory of $PROG: refusing to wipe it"
        say "stopping and wiping the previous cluster in $DIR"
        halt_all || die "could not stop the previous cluster in $DIR"
        # The marker goes last, so that a wipe cut short still leaves a recognisable cluster dir.
        find "$DIR" -mindepth 1 -maxdepth 1 ! -name "${MARKER##*/}" -exec rm -rf -- {} +
    fi
    mkdir -p -- "$DIR"
    echo "$MARKER_TEXT" >"$MARKER"
    mkdir -p -- "$PIDS" "$LOGS" "$DIR/run" "$DIR/mon" "$DIR/osd" "$DIR/rgw"
}

# write_conf FSID MON_PORT RGW_PORT
write_conf() {
    local fsid=$1 mon_port=$2 rgw_port=$3 asok="$DIR/run/\$cluster-\$name.asok"
    # A unix socket path must fit in 108 bytes; in a very deep DIR go without admin sockets.
    ((${#DIR} + 35 < 108)) || asok=
    {
        cat <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false

# No cephx. Clients default to a 'secure' mon connection that needs it: radosgw would hang
# ("get_initial_auth_request returned -13") unless crc is allowed.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
mon warn on insecure global id reclaim allowed = false

# Nothing outside DIR: no /etc/ceph, /var/lib/ceph, /var/log/ceph or /var/run/ceph.
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $asok
pid file = $DIR/run/\$cluster-\$name.pid
log file = $LOGS/\$cluster-\$name.log
mon cluster log file = $LOGS/\$cluster.\$channel.log
crash dir = $LOGS/crash
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
rgw data = $DIR/rgw/\$cluster-\$id

# One OSD holds the only copy of everything.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool delete = true
# A test machine's disk may be fuller than a production mon tolerates.
mon data avail warn = 2
mon data avail crit = 1

# radosgw creates its pools one map change at a time: short paxos rounds (default 1 s) make a
# cold start seconds faster.
paxos propose interval = 0.05
paxos min wait = 0.01

osd objectstore = $OBJECTSTORE
EOF
        if [[ $OBJECTSTORE == memstore ]]; then
            echo "memstore device bytes = ${CEPH_MEMSTORE_SIZE:-17179869184}"
        else
            # mkfs creates the sparse file block in the OSD's data dir (no block path given).
            echo "bluestore block create = true"
            echo "bluestore block size = ${CEPH_BLUESTORE_SIZE:-20G}"
            echo "bluestore fsck on mkfs = false"
            echo "osd memory target = 1073741824"
        fi
        cat <<EOF

[client.rgw.a]
# tcp_nodelay: without it every small ranged GET waits ~40 ms for a delayed ACK.
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw init timeout = $TIMEOUT
rgw enable usage log = false
# Garbage-collect the RADOS objects of deleted or overwritten S3 objects within ~20 s, not hours.
rgw gc obj min wait = 5
rgw gc processor period = 10
EOF
    } >"$CONF"
}

write_env() {
    local endpoint=http://127.0.0.1:$1
    printf '%s\n' "S3_ENDPOINT=$endpoint" "AWS_ACCESS_KEY_ID=$ACCESS_KEY" \
        "AWS_SECRET_ACCESS_KEY=$SECRET_KEY" "AWS_REGION=$REGION" >"$DIR/s3.env.tmp"
    mv -f "$DIR/s3.env.tmp" "$DIR/s3.env"
    echo "S3_ENDPOINT=$endpoint AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=$REGION"
}

# ---------------------------------------------------------------------------------------------
# Subcommands

cmd_start() {
    case $OBJECTSTORE in
        memstore | bluestore) ;;
        *) die "CEPH_OBJECTSTORE must be memstore or bluestore, not '$OBJECTSTORE'" ;;
    esac
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "CEPH_READY_TIMEOUT must be a whole number of seconds"
    local p
    for p in "${CEPH_MON_PORT:-1}" "${CEPH_RGW_PORT:-1}"; do
        if ! [[ $p =~ ^[1-9][0-9]{0,4}$ ]] || ((p > 65535)); then
            die "CEPH_MON_PORT/CEPH_RGW_PORT: '$p' is not a port number"
        fi
    done
    ensure_tools
    ensure_packages
    fresh_dir
    arm_cleanup

    local mon_port rgw_port fsid osd_uuid osd_id setup_log=$LOGS/setup.log
    if [[ -n ${CEPH_MON_PORT:-} ]]; then mon_port=$CEPH_MON_PORT; else pick_port mon_port 16000 17000; fi
    if [[ -n ${CEPH_RGW_PORT:-} ]]; then rgw_port=$CEPH_RGW_PORT; else pick_port rgw_port 17000 20000; fi
    ! port_in_use "$mon_port" || die "mon port $mon_port is in use"
    ! port_in_use "$rgw_port" || die "radosgw port $rgw_port is in use"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid" "$mon_port" "$rgw_port"
    say "$(elapsed) $OBJECTSTORE cluster in $DIR: mon on 127.0.0.1:$mon_port, S3 on 127.0.0.1:$rgw_port"

    # The monitor.
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" >>"$setup_log" 2>&1
    timeout -k 5 "$TIMEOUT" ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" >>"$setup_log" 2>&1
    launch mon ceph-mon -i a
    wait_until "mon in quorum" ceph_cli mon stat

    # The OSD.
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph_cli osd new "$osd_uuid" 2>>"$setup_log")
    [[ $osd_id =~ ^[0-9]+$ ]] || die "'ceph osd new' answered '$osd_id', not an OSD id"
    mkdir -p "$DIR/osd/ceph-$osd_id"
    timeout -k 5 "$TIMEOUT" ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$setup_log" 2>&1
    launch osd ceph-osd -i "$osd_id"
    wait_until "osd.$osd_id up" osd_is_up

    # The S3 gateway (it creates its pools on its first start) and the S3 user.
    launch rgw radosgw -n client.rgw.a
    wait_until "radosgw answers on http://127.0.0.1:$rgw_port/" rgw_answers "$rgw_port"
    timeout -k 5 "$TIMEOUT" radosgw-admin -c "$CONF" user create --uid=dos-test --display-name="dos tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$setup_log" 2>&1 \
        || die "radosgw-admin user create failed"

    local bucket code
    for bucket in "$@"; do
        code=$(curl -s -o "$LOGS/bucket-$bucket.out" -w '%{http_code}' -X PUT \
            --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
            -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
            "http://127.0.0.1:$rgw_port/$bucket") || code=000
        [[ $code == 200 ]] || die "creating bucket $bucket answered HTTP $code"
    done

    write_env "$rgw_port"
    say "$(elapsed) ready"
    trap - EXIT
}

cmd_stop() {
    local rm_dir=0
    case ${1:-} in
        '') ;;
        --rm) rm_dir=1 ;;
        *) usage ;;
    esac
    if [[ ! -e $DIR ]]; then
        say "$DIR does not exist: nothing to stop"
        return 0
    fi
    require_cluster_dir
    halt_all || die "some daemons of $DIR could not be stopped (pid files kept in $PIDS)"
    if ((rm_dir)); then
        rm -rf -- "$DIR"
        say "removed $DIR"
    fi
}

cmd_stop_rgw() {
    require_cluster_dir
    halt rgw
}

cmd_start_rgw() {
    require_cluster_dir
    local port
    port=$(rgw_port_of_conf)
    if ! running mon || ! running osd; then
        die "the mon and OSD of $DIR are not running: use '$PROG start'"
    fi
    arm_cleanup
    if running rgw; then
        say "radosgw already running (pid $(pid_of rgw))"
    else
        ! port_in_use "$port" || die "port $port is taken by another process"
        launch rgw radosgw -n client.rgw.a
    fi
    wait_until "radosgw answers on http://127.0.0.1:$port/" rgw_answers "$port"
    trap - EXIT
}

cmd_status() {
    require_cluster_dir
    local name port ok=0
    for name in mon osd rgw; do
        if running "$name"; then
            echo "$name: running (pid $(pid_of "$name"))"
        else
            echo "$name: not running"
            ok=1
        fi
    done
    port=$(rgw_port_of_conf)
    if rgw_answers "$port"; then
        echo "s3: http://127.0.0.1:$port/ answers 200"
    else
        echo "s3: http://127.0.0.1:$port/ does not answer"
        ok=1
    fi
    return "$ok"
}

(($# >= 2)) || usage
command=$1
set_dir "$2"
shift 2
case $command in
    start) cmd_start "$@" ;;
    stop) (($# <= 1)) || usage; cmd_stop "$@" ;;
    stop-rgw) (($# == 0)) || usage; cmd_stop_rgw ;;
    start-rgw) (($# == 0)) || usage; cmd_start_rgw ;;
    status) (($# == 0)) || usage; cmd_status ;;
    *) usage ;;
esac
