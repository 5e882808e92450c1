# shellcheck shell=bash
# Shared by the bats files: a fixture node (tests/repair/make-fixture.sh,
# tests/repair/lib/node.sh) and the scripts run on it as on a stock kubeadm
# node: with a PATH of the tools such a node has, and the stand-ins.

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# The script under test: the repair as the handler sends it (the sent_script
# binary: its comment lines emptied), or LIFEBOAT_TEST_REPAIR (another
# version of it, e.g. an older one to see which cases it fails); the health
# check is its --health.
SENT_SCRIPT=${CARGO_TARGET_DIR:-$REPO/target}/debug/sent_script
if [[ -n ${LIFEBOAT_TEST_REPAIR:-} ]]; then
  SCRIPT=$LIFEBOAT_TEST_REPAIR
else
  SCRIPT=$BATS_FILE_TMPDIR/lifeboat-repair.sh
  [[ -s $SCRIPT ]] || { "$SENT_SCRIPT" >"$SCRIPT" && chmod +x "$SCRIPT"; } ||
    echo "cannot run $SENT_SCRIPT: build it (cargo build -p lifeboat-tests --bin sent_script)" >&2
fi
USER_DATA=${CARGO_TARGET_DIR:-$REPO/target}/debug/user_data

# What a kubeadm node has on its PATH (Ubuntu or Debian with the
# pkgs.k8s.io packages: kubelet, kubeadm, kubectl, cri-tools): the host's own
# binaries, and the stand-ins for the rest. No etcdctl: kubeadm installs none.
STOCK_TOOLS=(bash sh env cat cp mv rm mkdir rmdir ls ln date sleep touch chmod stat find sort uniq head tail tr cut
  wc tee dirname basename readlink mktemp du df id seq xargs grep sed awk base64 sha256sum timeout paste flock setsid chown
  openssl kill ps)

bats_require_minimum_version 1.5.0

# node_setup: an empty fixture node; the scripts' PATH in $STOCK_BIN.
node_setup() {
  export FIXTURE=$BATS_TEST_TMPDIR/fixture
  export FAKE_ROOT=$FIXTURE/root FAKE_NODE=$FIXTURE/node FAKE_LOG=$FIXTURE/calls.log
  export STOCK_BIN=$FIXTURE/bin
  mkdir -p "$FAKE_NODE/host" "$STOCK_BIN"
  : >"$FAKE_LOG"
  local tool path
  for tool in "${STOCK_TOOLS[@]}"; do
    path=$(type -P "$tool") || { echo "the host lacks $tool" >&2; return 1; }
    ln -s "$path" "$STOCK_BIN/$tool"
  done
  for path in "$BATS_TEST_DIRNAME"/bin/*; do
    ln -s "$path" "$STOCK_BIN/${path##*/}"
  done
}

# wrap_tool TOOL <<'BODY': the node's TOOL becomes a bash script running BODY
# (from stdin), in which $REAL is the real tool; unwrap_tool TOOL puts it back.
wrap_tool() {
  local real
  real=$(readlink "$STOCK_BIN/$1")
  rm "$STOCK_BIN/$1"
  { printf '#!/bin/bash\nREAL=%q\n' "$real"; cat; } >"$STOCK_BIN/$1"
  chmod +x "$STOCK_BIN/$1"
}
unwrap_tool() { ln -sf "$(sed -n 's/^REAL=//p' "$STOCK_BIN/$1")" "$STOCK_BIN/$1"; }

# node_teardown: every process the fixture started (etcd).
node_teardown() {
  local pid
  [[ -f $FAKE_NODE/containers.tsv ]] || return 0
  while IFS=$'\t' read -r _ _ _ _ _ _ _ pid _; do
    pid=${pid#-}
    # An exited container's process is gone already (an earlier boot's).
    [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  done <"$FAKE_NODE/containers.tsv"
  return 0
}

# make_fixture OLD_IP [make-fixture.sh options]: the node's disk and etcd data.
make_fixture() {
  "$BATS_TEST_DIRNAME/make-fixture.sh" "$FIXTURE" "$@"
}

# node_host IP HOSTNAME: the instance the disk now runs on.
node_host() {
  echo "$1" >"$FAKE_NODE/host/ip"
  echo "$2" >"$FAKE_NODE/host/hostname"
}

# The environment of a command on the fixture node, as root under SSM: a
# clean one, with the stock PATH (NODE_ENV).
node_env() {
  NODE_ENV=(PATH="$STOCK_BIN" HOME=/root LANG=C.UTF-8 FAKE_ROOT="$FAKE_ROOT" FAKE_NODE="$FAKE_NODE" FAKE_LOG="$FAKE_LOG"
    LIFEBOAT_ROOT="$FAKE_ROOT")
  [[ -z ${FAKE_KUBEADM_VERSION:-} ]] || NODE_ENV+=(FAKE_KUBEADM_VERSION="$FAKE_KUBEADM_VERSION")
  [[ -z ${FAKE_KUBEADM_FAIL_ONCE:-} ]] || NODE_ENV+=(FAKE_KUBEADM_FAIL_ONCE="$FAKE_KUBEADM_FAIL_ONCE")
  [[ -z ${FAKE_ETCD_DIR:-} ]] || NODE_ENV+=(FAKE_ETCD_DIR="$FAKE_ETCD_DIR")
}

# Runs a command on the fixture node.
on_node() {
  node_env
  env -i "${NODE_ENV[@]}" "$@"
}

repair() { on_node "$SCRIPT" "$@"; }
health() { on_node "$SCRIPT" --health "$@"; }

# node_volumes ROOT [DATA...]: the EBS volumes attached to the instance from
# its next boot on (the root first), as NVMe devices of a Nitro instance.
# Without it the instance has no NVMe serials (a Xen type).
node_volumes() { printf '%s\n' "$@" >"$FAKE_NODE/host/volumes"; }

# etcd_volume VOLUME: etcd's data dir is the mount of a data volume, in the
# disk's /etc/fstab by its udev name (60-persistent-storage.rules: the NVMe
# model and serial, "Amazon Elastic Block Store" and the volume id).
etcd_volume() {
  printf '/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_%s\t/var/lib/etcd\text4\tdefaults,nofail\t0 2\n' \
    "${1/-/}" >>"$FAKE_ROOT/etc/fstab"
}

# The devices and mounts of a boot, under FAKE_ROOT/sys and
# FAKE_ROOT/proc/self/mountinfo, from the volumes node_volumes attached and
# the disk's /etc/fstab:
# - each volume an NVMe controller (/sys/class/nvme/nvmeN, its serial the
#   volume id without the hyphen, padded with spaces to the 20 bytes of the
#   Identify Controller field: drivers/nvme/host/sysfs.c,
#   nvme_show_str_function) with one namespace nvmeNn1, whose "device" link
#   is the controller; the root's has the partition nvme0n1p1 (a
#   "partition" attribute: block/partitions/core.c); /sys/dev/block/MAJ:MIN
#   links each block device (Documentation/ABI/stable/sysfs-dev);
# - mountinfo as the kernel prints it (Documentation/filesystems/proc.rst,
#   /proc/<pid>/mountinfo: the device number in field 3, the mount point in
#   field 5): / from the root's partition (202:1, a Xen disk, without
#   volumes), then each fstab entry whose volume is attached, unless
#   FAKE_NODE/host/mount-fails lists its mount point (the mount failed; a
#   nofail mount does not stop the boot: systemd.mount(5)).
boot_devices() {
  local sys=$FAKE_ROOT/sys i=0 vol pci root_dev=202:1 spec mp type _ dev n=26
  local -A devno=()
  rm -rf "$sys" "$FAKE_ROOT/proc"
  mkdir -p "$FAKE_ROOT/proc/self"
  if [[ -f $FAKE_NODE/host/volumes ]]; then
    mkdir -p "$sys/class/nvme" "$sys/dev/block"
    while read -r vol; do
      pci=devices/pci0000:00/0000:00:$(printf %02x $((i + 4))).0/nvme/nvme$i
      mkdir -p "$sys/$pci/nvme${i}n1"
      printf '%-20s\n' "vol${vol#vol-}" >"$sys/$pci/serial"
      ln -s "../../$pci" "$sys/class/nvme/nvme$i"
      ln -s "../../nvme$i" "$sys/$pci/nvme${i}n1/device"
      echo "259:$((2 * i))" >"$sys/$pci/nvme${i}n1/dev"
      ln -s "../../$pci/nvme${i}n1" "$sys/dev/block/259:$((2 * i))"
      devno[$vol]=259:$((2 * i))
      if ((i == 0)); then
        mkdir "$sys/$pci/nvme0n1/nvme0n1p1"
        echo 1 >"$sys/$pci/nvme0n1/nvme0n1p1/partition"
        echo 259:1 >"$sys/$pci/nvme0n1/nvme0n1p1/dev"
        ln -s "../../$pci/nvme0n1/nvme0n1p1" "$sys/dev/block/259:1"
        root_dev=259:1
      fi
      i=$((i + 1))
    done <"$FAKE_NODE/host/volumes"
  fi
  {
    printf '25 1 %s / / rw,relatime shared:1 - ext4 /dev/root rw,discard,errors=remount-ro\n' "$root_dev"
    [[ -f $FAKE_ROOT/etc/fstab ]] || return 0
    while read -r spec mp type _; do
      [[ $spec == /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol* ]] || continue
      vol=vol-${spec##*_vol}
      dev=${devno[$vol]:-}
      [[ -n $dev ]] || continue
      grep -qxF "$mp" "$FAKE_NODE/host/mount-fails" 2>/dev/null && continue
      printf '%d 25 %s / %s rw,relatime shared:%d - %s /dev/nvme%sn1 rw\n' "$n" "$dev" "$mp" "$n" "$type" "$(((${dev#*:}) / 2))"
      n=$((n + 1))
    done <"$FAKE_ROOT/etc/fstab"
  } >"$FAKE_ROOT/proc/self/mountinfo"
}

# node_boot [--cloud-init] [--instance ID] [USER DATA OPTIONS]: powers the
# node off and on. The user data options (those of the user_data binary:
# --root-volume, --data, --ip, --fence, --vpc, --region) imply --cloud-init. The processes die,
# /run (a tmpfs) and the kernel's iptables rules are gone, containerd's
# containers are stopped, the devices and mounts are those of this boot
# (boot_devices). systemd loads its units and queues the boot's jobs
# (multi-user.target wants kubelet, which waits for network-online.target);
# cloud-init's network stage, before network-online.target, runs the user
# data's boothook (only with --cloud-init); then the queued jobs run.
# --instance: the instance's id (default i-0123456789abcdef0).
node_boot() {
  local cloud_init=false user_data=() instance=i-0123456789abcdef0
  while (($#)); do
    case $1 in
      --cloud-init) cloud_init=true ;;
      --instance) instance=$2; shift ;;
      --fence | --vpc | --region | --root-volume | --data | --ip) user_data+=("$1" "$2"); cloud_init=true; shift ;;
      *) echo "node_boot: unknown option $1" >&2; return 1 ;;
    esac
    shift
  done
  node_teardown
  if [[ -f $FAKE_NODE/containers.tsv ]]; then
    awk 'BEGIN { FS = OFS = "\t" } $7 == "running" { $7 = "exited"; $10 = "-0" } { print }' \
      "$FAKE_NODE/containers.tsv" >"$FAKE_NODE/containers.tsv.new"
    mv "$FAKE_NODE/containers.tsv.new" "$FAKE_NODE/containers.tsv"
  fi
  rm -rf "$FAKE_ROOT/run" "$FAKE_NODE/iptables" "$FAKE_NODE/ip6tables" "$FAKE_NODE/systemd" "$FAKE_NODE/pods"
  mkdir -p "$FAKE_ROOT/run"
  boot_devices
  on_node systemctl daemon-reload
  on_node systemctl start --no-block kubelet
  if $cloud_init; then
    run_boothook "$instance" "${user_data[@]}"
  fi
  on_node systemctl is-system-running --wait >/dev/null || true
}

# The user data as cloud-init runs a #cloud-boothook (canonical/cloud-init
# cloudinit/handlers/boot_hook.py): the "#cloud-boothook" prefix stripped,
# the rest left-stripped, written 0700 and executed (its #! line chooses the
# interpreter), with INSTANCE_ID set. Before it runs any part handler,
# cloud-init has recorded the instance's id (cloudinit/stages.py,
# _reflect_cur_instance: /var/lib/cloud/data/instance-id and
# /run/cloud-init/.instance-id). LIFEBOAT_TEST_USER_DATA: another renderer
# of the user data, called with the same options (e.g. an older version).
run_boothook() { # run_boothook INSTANCE_ID [USER DATA OPTIONS]
  local hook=$FIXTURE/boothook instance=$1 render=${LIFEBOAT_TEST_USER_DATA:-$USER_DATA}
  shift
  [[ -x $render ]] || { echo "missing $render: cargo build -p lifeboat-tests --bin user_data" >&2; return 1; }
  "$render" "$@" >"$FIXTURE/user-data"
  [[ $(head -n 1 "$FIXTURE/user-data") == "#cloud-boothook" ]] || { echo "not a boothook" >&2; return 1; }
  sed '1s/^#cloud-boothook//' "$FIXTURE/user-data" | sed '/./,$!d' >"$hook"
  chmod 700 "$hook"
  mkdir -p "$FAKE_ROOT/var/lib/cloud/data" "$FAKE_ROOT/run/cloud-init"
  echo "$instance" >"$FAKE_ROOT/var/lib/cloud/data/instance-id"
  echo "$instance" >"$FAKE_ROOT/run/cloud-init/.instance-id"
  on_node INSTANCE_ID="$instance" "$hook"
}

# The guard's record of this boot (/run/lifeboat/status): guard_status KEY.
guard_status() { sed -n "s/^$1=//p" "$FAKE_ROOT/run/lifeboat/status"; }

# The last line lifeboat's guard wrote to the console.
console_guard() { grep '^lifeboat-guard: ' "$FAKE_NODE/console" | tail -n 1; }

# free_ports N: N free TCP ports on loopback.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])' "$1"
}

# The ports of the fixture's etcd: client, peer, metrics.
etcd_ports() { cat "$FIXTURE/ports"; }

# etcdctl from the test, with the apiserver's client certificate.
test_etcdctl() { # test_etcdctl HOST ARGS...
  local host=$1 client
  shift
  read -r client _ _ <"$FIXTURE/ports"
  ETCDCTL_API=3 etcdctl --endpoints "https://$host:$client" --cacert "$FAKE_ROOT/etc/kubernetes/pki/etcd/ca.crt" \
    --cert "$FAKE_ROOT/etc/kubernetes/pki/apiserver-etcd-client.crt" \
    --key "$FAKE_ROOT/etc/kubernetes/pki/apiserver-etcd-client.key" "$@"
}

# A stored object of the cluster, as the apiserver keeps it.
cluster_object() { test_etcdctl 127.0.0.1 get --print-value-only "$1"; }

# shellcheck disable=SC2154 # bats' run sets output
last_json() { tail -n 1 <<<"$output"; }

# A field of a result line (strings and booleans; arrays as their JSON): the
# last line of $output, or LINE.
json_field() { # json_field NAME [LINE]
  python3 -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(json.dumps(v) if isinstance(v,(list,dict)) else v)' \
    "${2:-$(last_json)}" "$1"
}

sans() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -n 1; }

# Files of the node's disk and their contents, etcd's live data and the
# guard's record of the instance it released aside.
tree_sum() {
  (cd "$FAKE_ROOT" && find etc var \( -path var/lib/etcd -o -path var/lib/lifeboat/released-instance \) \
    -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
}

# The running containers named NAME (ids), as containerd has them.
running_containers() { on_node crictl ps -q --name "^$1\$"; }

# What the running container NAME read at its start (DaemonSet pods).
container_view() { cat "$FAKE_NODE/containers/$(running_containers "$1" | head -n 1)/view"; }

# cert_days BASE DAYS: re-signs a certificate of the fixture's PKI with its
# names and usages kept, valid for DAYS more days (-1: expired yesterday). A
# CA (ca, front-proxy-ca, etcd/ca) signs itself anew with its own key: the
# certificates it signed still verify.
cert_days() {
  local pki=$FAKE_ROOT/etc/kubernetes/pki base=$1 days=$2 sign
  case $base in
    ca | front-proxy-ca | etcd/ca) sign=(-signkey "$pki/$base.key") ;;
    etcd/* | apiserver-etcd-client) sign=(-CA "$pki/etcd/ca.crt" -CAkey "$pki/etcd/ca.key") ;;
    *) sign=(-CA "$pki/ca.crt" -CAkey "$pki/ca.key") ;;
  esac
  openssl x509 -in "$pki/$base.crt" -x509toreq -signkey "$pki/$base.key" -copy_extensions copyall -out "$pki/$base.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$base.csr" "${sign[@]}" -set_serial "0x$(openssl rand -hex 8)" \
    -days "$days" -copy_extensions copyall -out "$pki/$base.crt" 2>/dev/null
  rm -f "$pki/$base.csr"
}

# harden_apiserver PORT: the apiserver as a CIS-hardened kubeadm cluster
# runs it: anonymous requests refused (--anonymous-auth=false), serving on
# PORT (--secure-port, its probes and the kubeconfigs' servers with it).
harden_apiserver() {
  local m=$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml
  sed -i -e "s/--secure-port=6443\$/--secure-port=$1/" -e "s/port: 6443\$/port: $1/" -e "s/:6443\$/:$1/" \
    -e 's/^    - --allow-privileged=true$/&\n    - --anonymous-auth=false/' "$m"
  sed -i "s/:6443\$/:$1/" "$FAKE_ROOT"/etc/kubernetes/*.conf
}
