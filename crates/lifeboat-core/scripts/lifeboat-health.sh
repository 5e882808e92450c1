#!/usr/bin/env bash
# lifeboat-health NODE: is this control plane healthy? Checks the apiserver's
# /readyz, etcd's endpoint health and that the Node object NODE exists; the
# last line is the result as JSON ({"result":"ok"} or "failed", with each
# check). Sent over SSM by restore drills after the repair.
set -uo pipefail
node=${1:?usage: lifeboat-health.sh NODE}
k=${LIFEBOAT_ROOT:-}/etc/kubernetes
check() { if "$@" >/dev/null 2>&1; then echo true; else echo false; fi; }
readyz=$(check curl -ksf --max-time 10 https://127.0.0.1:6443/readyz)
etcd=$(check etcdctl --endpoints https://127.0.0.1:2379 --cacert "$k/pki/etcd/ca.crt" \
  --cert "$k/pki/apiserver-etcd-client.crt" --key "$k/pki/apiserver-etcd-client.key" endpoint health)
node_found=$(check kubectl --kubeconfig "$k/admin.conf" --request-timeout=10s get node "$node")
result=failed
if [[ $readyz == true && $etcd == true && $node_found == true ]]; then result=ok; fi
printf '{"result":"%s","step":"health","readyz":%s,"etcd":%s,"node":%s,"message":"node %s"}\n' \
  "$result" "$readyz" "$etcd" "$node_found" "$node"
[[ $result == ok ]]
