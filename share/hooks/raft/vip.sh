#!/bin/sh
# OneHA floating IP hook: RAFT_LEADER_HOOK / RAFT_FOLLOWER_HOOK, as OpenNebula's raft/vip.sh.
#
#   vip.sh leader   <iface> <ip/cidr> [<iface> <ip/cidr> ...]   add the address(es), announce them
#   vip.sh follower <iface> <ip/cidr> [<iface> <ip/cidr> ...]   remove them if present
#
# Both actions are idempotent. The gratuitous ARP rounds run in the background so the leader
# can take writes as soon as its address is up. `ip` runs directly (root, or oned started with
# CAP_NET_ADMIN as the shipped systemd unit does), else through `sudo -n`.

set -u

usage() {
    echo "usage: $0 <leader|follower> <iface> <ip/cidr> [<iface> <ip/cidr> ...]" >&2
    exit 2
}

[ $# -ge 3 ] || usage
action=$1
shift
[ $(( $# % 2 )) -eq 0 ] || usage
case $action in leader|follower) ;; *) usage ;; esac

ipcmd() {
    if ip "$@" 2>/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        sudo -n ip "$@"
    else
        ip "$@"
    fi
}

has_address() { # iface ip/cidr
    ip -o address show dev "$1" 2>/dev/null | grep -Eq "inet6? ${2%/*}/"
}

announce() { # iface ip/cidr: gratuitous ARP, so neighbours move the address to this MAC
    command -v arping >/dev/null 2>&1 || return 0
    iface=$1
    addr=$2
    case $2 in *:*) return 0 ;; esac
    if arping --help 2>&1 | grep -q Habets; then
        set -- -q -U -c 1 -w 1 -i "$1" -S "${2%/*}" "${2%/*}"
    else
        set -- -q -U -c 1 -I "$1" "${2%/*}"
    fi
    for _ in 1 2 3 4 5; do
        # Stop as soon as a follower hook took the address away: announcing it after that
        # would steal the traffic of the new leader.
        has_address "$iface" "$addr" || return 0
        arping "$@" || true
        sleep 1
    done
}

# One hook at a time on this host: a leader and a follower hook must not interleave.
lock_dir=${ONE_LOCATION:+$ONE_LOCATION/var/lock}
lock_dir=${lock_dir:-/var/lock/one}
mkdir -p "$lock_dir" 2>/dev/null
if command -v flock >/dev/null 2>&1 && exec 9>"$lock_dir/vip_sh" 2>/dev/null; then
    flock -w 60 9 || echo "vip.sh: could not take $lock_dir/vip_sh within 60 s; going on" >&2
fi

status=0
while [ $# -ge 2 ]; do
    iface=$1
    addr=$2
    shift 2
    case $addr in */*) ;; *) echo "vip.sh: $addr: expected ip/cidr" >&2; status=2; continue ;; esac
    if [ "$action" = leader ]; then
        if has_address "$iface" "$addr"; then
            echo "$addr already on $iface"
        elif ipcmd address add "$addr" dev "$iface"; then
            echo "added $addr on $iface"
        else
            echo "vip.sh: could not add $addr on $iface" >&2
            status=1
            continue
        fi
        # Without the lock (fd 9): a follower hook must not wait for the announcements.
        ( announce "$iface" "$addr" ) 9>&- </dev/null >/dev/null 2>&1 &
    else
        if has_address "$iface" "$addr"; then
            if ipcmd address del "$addr" dev "$iface"; then
                echo "removed $addr from $iface"
            else
                echo "vip.sh: could not remove $addr from $iface" >&2
                status=1
            fi
        else
            echo "$addr not on $iface"
        fi
    fi
done
exit $status
