#!/usr/bin/env bash
# lifeboat-health NODE_NAME [--timeout SECONDS] [--root DIR]: is this
# control plane healthy on its own IP? Sent over SSM by restore drills after
# the repair (`bash -s -- ARGS`, the script on stdin).
#
# Checks, retried together until all pass or the budget (default 120 s) is
# spent:
#   readyz  the apiserver's /readyz at https://<node IP>:6443, its
#           certificate verified against the cluster CA
#   etcd    `etcdctl endpoint health` inside the running etcd container
#           (crictl exec, kubeadm's healthcheck-client certificate): a stock
#           kubeadm node has no etcdctl of its own
#   node    the Node NODE_NAME Ready, with the node's IP (IMDSv2 local-ipv4)
#           as its InternalIP
# The last line on stdout is one JSON object:
#   {"result":"ok|failed","step":"health","readyz":bool,"etcd":bool,
#    "node_ready":bool,"internal_ip":"...","message":"..."}
# Exit 0 only when healthy (1 unhealthy, 2 usage).
set -uo pipefail

ROOT=${LIFEBOAT_ROOT:-}
IMDS=${LIFEBOAT_IMDS:-http://169.254.169.254}
TIMEOUT=120
NODE=""

json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\n'/ }"; }

report() { # report RESULT READYZ ETCD NODE_READY INTERNAL_IP MESSAGE
  printf '{"result":"%s","step":"health","readyz":%s,"etcd":%s,"node_ready":%s,"internal_ip":%s,"message":%s}\n' \
    "$1" "$2" "$3" "$4" "$(json_string "$5")" "$(json_string "$6")"
}

usage() {
  echo "usage: lifeboat-health.sh NODE_NAME [--timeout SECONDS] [--root DIR]" >&2
  report failed false false false "" "$1"
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

check_readyz() { [[ $(curl -sf --max-time 5 --cacert "$k/pki/ca.crt" "https://$ip:6443/readyz" 2>/dev/null) == ok ]]; }

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

node_status=""
check_node() {
  node_status=$(kubectl --kubeconfig "$k/admin.conf" --server "https://$ip:6443" --request-timeout=10s get node "$NODE" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null)
  [[ $node_status == "True $ip" ]]
}

if ! ip=$(imds_ip) || [[ -z $ip ]]; then
  report failed false false false "" "cannot read local-ipv4 from IMDSv2 at $IMDS"
  exit 1
fi

readyz=false etcd=false node_ready=false
while true; do
  $readyz || { check_readyz && readyz=true; }
  $etcd || { check_etcd && etcd=true; }
  if $readyz; then check_node && node_ready=true || node_ready=false; fi
  if $readyz && $etcd && $node_ready; then break; fi
  ((SECONDS < deadline)) || break
  sleep 2
done

internal_ip=${node_status#* }
[[ $node_status == *" "* ]] || internal_ip=""
if $readyz && $etcd && $node_ready; then
  report ok true true true "$internal_ip" "node $NODE Ready on $ip; apiserver ready; etcd healthy"
  exit 0
fi
problems=()
$readyz || problems+=("the apiserver is not ready at https://$ip:6443")
$etcd || problems+=("etcd is not healthy")
$node_ready || problems+=("node $NODE is not Ready on $ip (Ready=${node_status%% *}, InternalIP=${internal_ip:-none})")
message=$(printf '%s; ' "${problems[@]}")
report failed "$readyz" "$etcd" "$node_ready" "$internal_ip" "${message%; }"
exit 1
