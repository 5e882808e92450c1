#!/bin/sh
# lifeboat-guard: may kubelet start on this boot? lifeboat's boothook (the
# user data) writes this script to /run/lifeboat/guard on every boot, its
# settings to /run/lifeboat/guard.conf, and a kubelet drop-in that holds
# kubelet until /run/lifeboat/released exists.
#
#   sh /run/lifeboat/guard check    lifeboat-guard.service, before kubelet
#   sh /run/lifeboat/guard release  an operator's release (refused while
#                                   etcd's data is not in place)
#
# `check` releases kubelet when this boot runs on the state lifeboat chose:
# - this instance was released before (/var/lib/lifeboat/released-instance
#   names it) and etcd's data is in place; or
# - every self-release setting holds: booted from ROOT_VOLUME, each volume
#   of DATA_VOLUMES attached, etcd's data in place, the host on PRIVATE_IP
#   and the node configured for it, kubelet registering under the node's
#   name, no certificate expired. The release then names this instance.
# etcd's data is in place when every fstab mount at or above etcd's
# --data-dir is mounted and the data dir holds a member (member/snap/db and
# member/wal/*.wal). Anything else (no settings, a fenced drill clone)
# stays held for lifeboat's repair. The decision goes to the console
# (stdout: journal+console) and to /run/lifeboat/status.
R="${LIFEBOAT_ROOT:-}"
RUN="$R/run/lifeboat"
STATUS="$RUN/status"
MARKER="$R/var/lib/lifeboat/released-instance"
ROOT_VOLUME="" DATA_VOLUMES="" PRIVATE_IP="" FENCE=""
# shellcheck source=/dev/null
[ ! -f "$RUN/guard.conf" ] || . "$RUN/guard.conf"

say() { echo "lifeboat-guard: $*"; }

# record GUARD REASON: the decision, in the status file and on the console.
record() {
  { grep -Ev '^(guard|reason|at)=' "$STATUS" 2>/dev/null
    printf 'guard=%s\nreason=%s\nat=%s\n' "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; } >"$STATUS.new" &&
    mv "$STATUS.new" "$STATUS"
  say "$1: $2"
}

# release GUARD REASON: kubelet may start, on this boot and on every later
# boot of this instance.
release() {
  if [ -n "$ID" ]; then mkdir -p "${MARKER%/*}" && echo "$ID" >"$MARKER"; fi
  : >"$RUN/released"
  record "$1" "$2"
}

# This instance's id, as cloud-init wrote it this boot before it ran any
# user data (cloudinit/stages.py, _reflect_cur_instance).
instance_id() {
  for f in "$R/run/cloud-init/.instance-id" "$R/var/lib/cloud/data/instance-id"; do
    if [ -s "$f" ]; then head -n 1 "$f"; return 0; fi
  done
  return 1
}

# The EBS volume an NVMe serial file names: on Nitro, the volume id without
# its hyphen, padded with spaces (vol0123... -> vol-0123...).
volume_of() {
  [ -r "$1" ] || return 1
  s=$(tr -d ' \n' <"$1")
  case $s in vol?*) echo "vol-${s#vol}" ;; *) return 1 ;; esac
}

# The volume the root filesystem is on: its device number in mountinfo, the
# disk of that partition in sysfs, the disk's NVMe controller (or subsystem).
root_volume() {
  dev=$(awk '$5 == "/" { d = $3 } END { print d }' "$R/proc/self/mountinfo" 2>/dev/null)
  [ -n "$dev" ] || return 1
  disk="$R/sys/dev/block/$dev"
  [ ! -f "$disk/partition" ] || disk="$disk/.."
  volume_of "$disk/device/serial"
}

attached() {
  for s in "$R"/sys/class/nvme/*/serial; do
    [ "$(volume_of "$s")" != "$1" ] || return 0
  done
  return 1
}

mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' "$R/proc/self/mountinfo" 2>/dev/null; }

# Why etcd's data is not in place (nothing when it is).
etcd_missing() {
  dir=$(sed -n 's/^ *- --data-dir=//p' "$R/etc/kubernetes/manifests/etcd.yaml" 2>/dev/null | head -n 1)
  dir=${dir:-/var/lib/etcd}
  if [ -f "$R/etc/fstab" ]; then
    while read -r spec mp type opts _; do
      case $spec,$type,$opts, in '',* | '#'* | *,swap,* | *,noauto,*) continue ;; esac
      [ "$mp" = / ] || mp=${mp%/}
      case $dir/ in
        "$mp"/*) mounted "$mp" || { echo "$mp is not mounted (fstab: $spec)"; return; } ;;
      esac
    done <"$R/etc/fstab"
  fi
  [ -s "$R$dir/member/snap/db" ] || { echo "etcd's data dir $dir holds no member (no member/snap/db)"; return; }
  for wal in "$R$dir"/member/wal/*.wal; do
    [ ! -f "$wal" ] || return 0
  done
  echo "etcd's data dir $dir holds no member (no member/wal/*.wal)"
}

# The node's name (kubelet.conf's system:node: user, else its client
# certificate's CN) against the one kubelet would register (the last
# --hostname-override of its flags, else the host name).
name_mismatch() {
  k="$R/etc/kubernetes"
  node=$(grep -o 'system:node:[^ "@]*' "$k/kubelet.conf" 2>/dev/null | head -n 1)
  if [ -z "$node" ]; then
    cert=$(sed -n 's/^ *client-certificate: //p' "$k/kubelet.conf" 2>/dev/null | head -n 1)
    node=$(openssl x509 -in "$R$cert" -noout -subject -nameopt RFC2253 2>/dev/null | sed -n 's/.*CN=\(system:node:[^,]*\).*/\1/p')
  fi
  node=${node#system:node:}
  [ -n "$node" ] || { echo "cannot tell the node's name from /etc/kubernetes/kubelet.conf"; return; }
  # kubelet's environment files as its unit names them (systemctl show, as
  # lifeboat-repair.sh's kubelet_env_files reads them), else kubeadm's and the
  # packages'; a value in double or single quotes as systemd reads it
  # (systemd.exec(5), EnvironmentFile=), then split at spaces as ExecStart=
  # splits $VAR; the flag as --hostname-override=NAME or --hostname-override
  # NAME, the last one winning (pflag).
  files=$(systemctl show -p EnvironmentFiles kubelet 2>/dev/null | sed -n 's/^EnvironmentFiles=\(.*\) (ignore_errors=[a-z]*)$/\1/p')
  [ -n "$files" ] || files="/var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet /etc/sysconfig/kubelet"
  name=$(for f in $files; do sed -n -E 's/^[[:space:]]*KUBELET_(KUBEADM|EXTRA)_ARGS=//p' "$R$f" 2>/dev/null; done |
    sed -e 's/^"\(.*\)"[[:space:]]*$/\1/' -e "s/^'\\(.*\\)'[[:space:]]*\$/\\1/" | tr ' ' '\n' | grep . |
    awk 'p { n = $0; p = 0; next } /^--hostname-override=/ { n = substr($0, 21) } $0 == "--hostname-override" { p = 1 } END { print n }')
  [ -n "$name" ] || name=$(hostname)
  name=$(echo "$name" | tr '[:upper:]' '[:lower:]')
  [ "$name" = "$node" ] || echo "kubelet would register as $name, the node is $node: the repair pins the name"
}

# Expired certificates of /etc/kubernetes (files and kubeconfigs).
expired() {
  command -v openssl >/dev/null || { echo "no openssl to check the certificates"; return; }
  for c in "$R"/etc/kubernetes/pki/*.crt "$R"/etc/kubernetes/pki/etcd/*.crt; do
    [ ! -f "$c" ] || openssl x509 -in "$c" -noout -checkend 0 >/dev/null 2>&1 || printf '%s ' "${c#"$R"}"
  done
  for c in "$R"/etc/kubernetes/*.conf; do
    pem=$(sed -n 's/^ *client-certificate-data: //p' "$c" 2>/dev/null | head -n 1)
    [ -z "$pem" ] || echo "$pem" | base64 -d 2>/dev/null | openssl x509 -noout -checkend 0 >/dev/null 2>&1 ||
      printf '%s ' "${c#"$R"}"
  done
}

# Why this boot is not on the state lifeboat chose (nothing when it is).
mismatch() {
  root=$(root_volume) || root="a disk without an NVMe volume serial"
  [ "$root" = "$ROOT_VOLUME" ] || { echo "booted from $root, not $ROOT_VOLUME"; return; }
  for pair in $DATA_VOLUMES; do
    attached "${pair%%=*}" || { echo "data volume ${pair%%=*} (${pair#*=}) is not attached"; return; }
  done
  why=$(etcd_missing)
  [ -z "$why" ] || { echo "$why"; return; }
  case " $(hostname -I 2>/dev/null) " in
    *" $PRIVATE_IP "*) ;;
    *) echo "the host is not on $PRIVATE_IP"; return ;;
  esac
  ip=$(sed -n 's/^ *- --advertise-address=//p' "$R/etc/kubernetes/manifests/kube-apiserver.yaml" 2>/dev/null | head -n 1)
  [ "$ip" = "$PRIVATE_IP" ] || { echo "the node is configured for ${ip:-no address}, not $PRIVATE_IP"; return; }
  why=$(name_mismatch)
  [ -z "$why" ] || { echo "$why"; return; }
  why=$(expired)
  [ -z "$why" ] || echo "expired certificates: $why"
}

check() {
  # Released already (by a repair that came first), or not held at all (the
  # boothook recorded that systemd did not load the drop-in).
  [ ! -e "$RUN/released" ] || return 0
  ! grep -q '^guard=not-confirmed$' "$STATUS" 2>/dev/null || return 0
  before=$(cat "$MARKER" 2>/dev/null) || before=""
  if [ -n "$FENCE" ]; then
    record held "a fenced drill clone: only lifeboat's repair releases it"
  elif [ -n "$ID" ] && [ "$before" = "$ID" ]; then
    why=$(etcd_missing)
    if [ -n "$why" ]; then record held "$why"; else release self-released "released before for $ID; etcd's data is in place"; fi
  elif [ -z "$ROOT_VOLUME" ]; then
    record held "${before:+released for $before, not for ${ID:-this instance}; }no self-release settings: lifeboat's repair releases it"
  elif [ -z "$ID" ]; then
    record held "cannot read this instance's id from cloud-init"
  else
    why=$(mismatch)
    if [ -n "$why" ]; then record held "$why"; else release self-released "booted from $ROOT_VOLUME on $PRIVATE_IP, etcd's data in place"; fi
  fi
}

ID=$(instance_id) || ID=""
case ${1:-} in
  check) check ;;
  release)
    why=$(etcd_missing)
    if [ -n "$why" ]; then
      say "refusing to release kubelet: $why; etcd would start a new, empty cluster"
      exit 1
    fi
    release released "released by hand"
    # The console too, as the unit's decisions are: `lifeboat status` reads
    # the last decision from the instance's console output.
    if [ -w "$R/dev/console" ]; then say "released: released by hand" >"$R/dev/console"; fi
    systemctl start kubelet
    ;;
  *) echo "usage: sh /run/lifeboat/guard check|release" >&2; exit 2 ;;
esac
