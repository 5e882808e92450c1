# shellcheck shell=bash
# Shared by the bats files: a fixture node (tests/repair/make-fixture.sh,
# tests/repair/lib/node.sh) and the scripts run on it as on a stock kubeadm
# node: with a PATH of the tools such a node has, and the stand-ins.

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# The scripts under test (LIFEBOAT_TEST_REPAIR / LIFEBOAT_TEST_HEALTH: another
# version of them, e.g. an older one to see which cases it fails).
SCRIPT=${LIFEBOAT_TEST_REPAIR:-$REPO/crates/lifeboat-core/scripts/lifeboat-repair.sh}
HEALTH=${LIFEBOAT_TEST_HEALTH:-$REPO/crates/lifeboat-core/scripts/lifeboat-health.sh}
USER_DATA=${CARGO_TARGET_DIR:-$REPO/target}/debug/user_data

# What a kubeadm node has on its PATH (Ubuntu or Debian with the
# pkgs.k8s.io packages: kubelet, kubeadm, kubectl, cri-tools): the host's own
# binaries, and the stand-ins for the rest. No etcdctl: kubeadm installs none.
STOCK_TOOLS=(bash sh env cat cp mv rm mkdir rmdir ls ln date sleep touch chmod stat find sort uniq head tail tr cut
  wc tee dirname basename readlink mktemp du df id seq xargs grep sed awk base64 sha256sum timeout paste flock setsid
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
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
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
}

# Runs a command on the fixture node.
on_node() {
  node_env
  env -i "${NODE_ENV[@]}" "$@"
}

repair() { on_node "$SCRIPT" "$@"; }
health() { on_node "$HEALTH" "$@"; }

# node_boot [--cloud-init] [--fence IP]...: powers the node off and on.
# The processes die, /run (a tmpfs) and the kernel's iptables rules are gone,
# containerd's containers are stopped. systemd loads its units, cloud-init's
# network stage runs the user data's boothook (only with --cloud-init), then
# multi-user.target starts kubelet (enabled).
node_boot() {
  local cloud_init=false fence=()
  while (($#)); do
    case $1 in
      --cloud-init) cloud_init=true ;;
      --fence) fence+=(--fence "$2"); cloud_init=true; shift ;;
    esac
    shift
  done
  node_teardown
  if [[ -f $FAKE_NODE/containers.tsv ]]; then
    awk 'BEGIN { FS = OFS = "\t" } $7 == "running" { $7 = "exited"; $10 = "-0" } { print }' \
      "$FAKE_NODE/containers.tsv" >"$FAKE_NODE/containers.tsv.new"
    mv "$FAKE_NODE/containers.tsv.new" "$FAKE_NODE/containers.tsv"
  fi
  rm -rf "$FAKE_ROOT/run" "$FAKE_NODE/iptables" "$FAKE_NODE/systemd" "$FAKE_NODE/pods"
  mkdir -p "$FAKE_ROOT/run"
  on_node systemctl daemon-reload
  if $cloud_init; then
    run_boothook "${fence[@]}"
  fi
  on_node systemctl start kubelet
}

# The user data as cloud-init runs a #cloud-boothook (canonical/cloud-init
# cloudinit/handlers/boot_hook.py): the "#cloud-boothook" prefix stripped,
# the rest left-stripped, written 0700 and executed (its #! line chooses the
# interpreter), with INSTANCE_ID set.
run_boothook() {
  [[ -x $USER_DATA ]] || { echo "missing $USER_DATA: cargo build -p lifeboat-tests --bin user_data" >&2; return 1; }
  local hook=$FIXTURE/boothook
  "$USER_DATA" "$@" >"$FIXTURE/user-data"
  [[ $(head -n 1 "$FIXTURE/user-data") == "#cloud-boothook" ]] || { echo "not a boothook" >&2; return 1; }
  sed '1s/^#cloud-boothook//' "$FIXTURE/user-data" | sed '/./,$!d' >"$hook"
  chmod 700 "$hook"
  on_node INSTANCE_ID=i-0123456789abcdef0 "$hook"
}

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

# Files of the node's disk and their contents, etcd's live data aside.
tree_sum() { (cd "$FAKE_ROOT" && find etc var -path var/lib/etcd -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }

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
