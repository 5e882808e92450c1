#!/usr/bin/env bash
# lifeboat-health NODE_NAME [--timeout SECONDS] [--root DIR]: is this
# control plane healthy on its own IP? Sent over SSM by restore drills after
# the repair (`bash -s -- ARGS`, the script on stdin).
#
# Checks, retried together until all pass or the budget (default 120 s) is
# spent:
#   readyz  the apiserver's /readyz at https://<node IP>:<--secure-port>,
#           asked with admin.conf's credentials (CIS-hardened apiservers
#           refuse anonymous requests), its certificate verified
#   mounts  every data volume lifeboat attached (/run/lifeboat/guard.conf)
#           mounted where /etc/fstab says (without that record, every
#           fstab mount)
#   etcd    `etcdctl endpoint health` inside the running etcd container
#           (crictl exec, kubeadm's healthcheck-client certificate): a stock
#           kubeadm node has no etcdctl of its own
#   node    the Node NODE_NAME Ready, with the node's IP (IMDSv2 local-ipv4)
#           among its InternalIPs
# The last line on stdout is one JSON object:
#   {"result":"ok|failed","step":"health","readyz":bool,"etcd":bool,
#    "node_ready":bool,"mounts":bool,"internal_ip":"...","message":"..."}
# Exit 0 only when healthy (1 unhealthy, 2 usage).
set -uo pipefail

ROOT=${LIFEBOAT_ROOT:-}
IMDS=${LIFEBOAT_IMDS:-http://169.254.169.254}
TIMEOUT=120
NODE=""

json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ }"; }

report() { # report RESULT READYZ ETCD NODE_READY MOUNTS INTERNAL_IP MESSAGE
  printf '{"result":"%s","step":"health","readyz":%s,"etcd":%s,"node_ready":%s,"mounts":%s,"internal_ip":%s,"message":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$(json_string "$6")" "$(json_string "$7")"
}

usage() {
  echo "usage: lifeboat-health.sh NODE_NAME [--timeout SECONDS] [--root DIR]" >&2
  report failed false false false false "" "$1"
  exit 2
}

while (($#)); do
  case $1 in
    --timeout)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage "--timeout needs a number of seconds"
      TIMEOUT=$2
      shift
      ;;
    --root) ROOT=${2:-}; shift ;;
    -*) usage "unknown argument '$1'" ;;
    *)
      [[ -z $NODE ]] || usage "one node name only"
      NODE=$1
      ;;
  esac
  shift
done
[[ -n $NODE ]] || usage "the node name is required"
k=$ROOT/etc/kubernetes
deadline=$((SECONDS + TIMEOUT))

imds_ip() {
  local token
  token=$(curl -sf --max-time 5 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/local-ipv4"
}

manifest_flag() { sed -n "s/^ *- --$2=//p" "$1" 2>/dev/null | head -n 1; }

# crictl talks to kubelet's runtime: the endpoint of kubelet's flags or
# configuration (crictl's default endpoints are deprecated).
if [[ -z ${CONTAINER_RUNTIME_ENDPOINT:-} ]]; then
  CONTAINER_RUNTIME_ENDPOINT=$(sed -n 's/.*--container-runtime-endpoint=\([^ "]*\).*/\1/p' "$ROOT/var/lib/kubelet/kubeadm-flags.env" 2>/dev/null | head -n 1)
  [[ -n $CONTAINER_RUNTIME_ENDPOINT ]] ||
    CONTAINER_RUNTIME_ENDPOINT=$(sed -n 's/^containerRuntimeEndpoint: *//p' "$ROOT/var/lib/kubelet/config.yaml" 2>/dev/null | tr -d '"' | head -n 1)
  [[ -z $CONTAINER_RUNTIME_ENDPOINT ]] || export CONTAINER_RUNTIME_ENDPOINT
fi

port=$(manifest_flag "$k/manifests/kube-apiserver.yaml" secure-port)
port=${port:-6443}
kube() { kubectl --kubeconfig "$k/admin.conf" --server "https://$ip:$port" "$@"; }
check_readyz() { [[ $(kube --request-timeout=5s get --raw /readyz 2>/dev/null) == ok ]]; }

check_etcd() {
  local id manifest pki endpoint url
  id=$(crictl ps -q --name '^etcd$' --label io.kubernetes.pod.namespace=kube-system 2>/dev/null | head -n 1)
  [[ -n $id ]] || return 1
  manifest=$k/manifests/etcd.yaml
  pki=$(dirname "$(manifest_flag "$manifest" trusted-ca-file)")
  endpoint=""
  for url in $(manifest_flag "$manifest" listen-client-urls | tr ',' ' '); do
    [[ $url == https://127.0.0.1:* ]] && endpoint=$url
  done
  [[ -n $endpoint ]] || endpoint=$(manifest_flag "$manifest" advertise-client-urls | cut -d, -f1)
  timeout 30 crictl exec "$id" etcdctl --endpoints="$endpoint" --cacert="$pki/ca.crt" \
    --cert="$pki/healthcheck-client.crt" --key="$pki/healthcheck-client.key" \
    --dial-timeout=3s --command-timeout=10s endpoint health >/dev/null 2>&1
}

mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' "$ROOT/proc/self/mountinfo" 2>/dev/null; }
# Why a data volume is not in place (nothing when all are): each fstab mount
# (not noauto, not swap) of a data volume lifeboat attached must be mounted.
# The boothook records them each boot from the user data (DATA_VOLUMES of
# /run/lifeboat/guard.conf: "vol-...=/dev/sdf ..."); an fstab entry is one's
# when it names the volume's id (/dev/disk/by-id/nvme-Amazon_Elastic_Block_
# Store_vol...). Without that record, or for a volume fstab does not name
# by id, every fstab mount is checked.
volumes_unmounted() {
  local conf=$ROOT/run/lifeboat/guard.conf vols vol v spec mp type opts all=false why=""
  if ! grep -q '^DATA_VOLUMES=' "$conf" 2>/dev/null; then
    all=true why="no record of lifeboat's data volumes (/run/lifeboat/guard.conf): every fstab mount checked"
  fi
  vols=$(sed -n "s/^DATA_VOLUMES='\(.*\)'$/\1/p" "$conf" 2>/dev/null | sed -E 's/=[^ ]*//g') || vols=""
  [[ -f $ROOT/etc/fstab ]] || return 0
  for vol in $vols; do
    if ! grep -v '^[[:space:]]*#' "$ROOT/etc/fstab" | grep -qF "${vol/-/}"; then
      all=true why="fstab names data volume $vol by no id: every fstab mount checked"
    fi
  done
  while read -r spec mp type opts _; do
    [[ -n $spec && $spec != \#* && $type != swap && ,$opts, != *,noauto,* ]] || continue
    [[ $mp == / ]] || mp=${mp%/}
    vol=""
    for v in $vols; do [[ $spec != *"${v/-/}"* ]] || vol=$v; done
    if [[ -n $vol || $all == true ]] && ! mounted "$mp"; then
      echo "$mp is not mounted (fstab: $spec${vol:+, data volume $vol}${why:+; $why})"
      return 0
    fi
  done <"$ROOT/etc/fstab"
}

node_status=""
check_node() {
  node_status=$(kube --request-timeout=10s get node "$NODE" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null)
  [[ ${node_status%% *} == True && " ${node_status#* } " == *" $ip "* ]]
}

if ! ip=$(imds_ip) || [[ -z $ip ]]; then
  report failed false false false false "" "cannot read local-ipv4 from IMDSv2 at $IMDS"
  exit 1
fi

readyz=false etcd=false node_ready=false mounts=false unmounted=""
while true; do
  $readyz || { check_readyz && readyz=true; }
  $etcd || { check_etcd && etcd=true; }
  if $readyz; then check_node && node_ready=true || node_ready=false; fi
  unmounted=$(volumes_unmounted)
  if [[ -z $unmounted ]]; then mounts=true; else mounts=false; fi
  if $readyz && $etcd && $node_ready && $mounts; then break; fi
  ((SECONDS < deadline)) || break
  sleep 2
done

internal_ip=${node_status#* }
[[ $node_status == *" "* ]] || internal_ip=""
if $readyz && $etcd && $node_ready && $mounts; then
  report ok true true true true "$internal_ip" "node $NODE Ready on $ip; apiserver ready; etcd healthy; data volumes mounted"
  exit 0
fi
problems=()
$readyz || problems+=("the apiserver is not ready at https://$ip:$port")
$etcd || problems+=("etcd is not healthy")
$node_ready || problems+=("node $NODE is not Ready on $ip (Ready=${node_status%% *}, InternalIP=${internal_ip:-none})")
$mounts || problems+=("$unmounted")
message=$(printf '%s; ' "${problems[@]}")
report failed "$readyz" "$etcd" "$node_ready" "$mounts" "$internal_ip" "${message%; }"
exit 1
