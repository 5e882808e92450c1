#!/usr/bin/env bats
# The repair against the real etcd (Debian's etcd-server) over TLS on
# loopback, reached as on a stock kubeadm node: no etcdctl on the node's PATH,
# `crictl exec` into the etcd container (the host's etcdctl stands for the
# image's) with kubeadm's healthcheck-client certificate. A member on
# 127.0.0.2 holding keys is moved to 127.0.0.3 by the script itself.

setup() {
  load helpers
  command -v etcd >/dev/null || skip "etcd is not installed (apt-get install etcd-server)"
  node_setup
}

teardown() {
  node_teardown
}

@test "the repair moves a real etcd over TLS from 127.0.0.2 to 127.0.0.3, keys intact" {
  make_fixture 127.0.0.2
  # The old instance, running, takes writes.
  node_host 127.0.0.2 k8s-master
  node_boot
  until test_etcdctl 127.0.0.2 endpoint health >/dev/null 2>&1; do sleep 0.2; done
  test_etcdctl 127.0.0.2 put /registry/namespaces/default default >/dev/null
  test_etcdctl 127.0.0.2 put /registry/secrets/kube-system/token s3cret >/dev/null
  keys_before=$(test_etcdctl 127.0.0.2 get --prefix --keys-only /registry/ | sed '/^$/d' | sort)
  # Its disk, on a new instance on 127.0.0.3.
  node_host 127.0.0.3 ip-127-0-0-3
  node_boot --cloud-init
  [ ! -e "$STOCK_BIN/etcdctl" ]
  run repair --timeout 120
  [ "$status" -eq 3 ]
  read -r client peer _ <"$FIXTURE/ports"
  # The member's peer URL moved (etcd keeps it in its data, not the manifest).
  run test_etcdctl 127.0.0.3 member list
  [[ $output == *", k8s-master, https://127.0.0.3:$peer, https://127.0.0.3:$client, false"* ]]
  [[ $output != *127.0.0.2* ]]
  grep -qE "^crictl exec [0-9a-f]+ etcdctl --endpoints=https://127.0.0.1:$client .*--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key .*member update [0-9a-f]+ --peer-urls=https://127.0.0.3:$peer$" "$FAKE_LOG"
  # The data came along.
  run test_etcdctl 127.0.0.3 get --print-value-only /registry/secrets/kube-system/token
  [ "$output" = s3cret ]
  [ "$(test_etcdctl 127.0.0.3 get --prefix --keys-only /registry/ | sed '/^$/d' | sort)" = "$keys_before" ]
  # Nothing listens on the old address any more.
  run test_etcdctl 127.0.0.2 endpoint health --dial-timeout=1s
  [ "$status" -ne 0 ]
}

@test "without kubeadm's healthcheck-client certificate the repair stops before anything (no etcdctl to fall back on)" {
  make_fixture 127.0.0.2
  node_host 127.0.0.3 ip-127-0-0-3
  node_boot --cloud-init
  rm "$FAKE_ROOT/etc/kubernetes/pki/etcd/healthcheck-client.key"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*"healthcheck-client certificate is missing"* ]]
  run ! grep -qE "^systemctl stop" "$FAKE_LOG"
}

@test "crictl exec runs what the etcd image carries: sh, cp, etcd, etcdctl, no etcdutl" {
  # kubernetes/kubernetes cluster/images/etcd/Dockerfile and Makefile.
  make_fixture 127.0.0.2
  node_host 127.0.0.2 k8s-master
  node_boot
  until test_etcdctl 127.0.0.2 endpoint health >/dev/null 2>&1; do sleep 0.2; done
  read -r client _ _ <"$FIXTURE/ports"
  id=$(running_containers etcd)
  pki=/etc/kubernetes/pki/etcd
  run on_node crictl exec "$id" /bin/sh -c "etcdctl --endpoints=https://127.0.0.1:$client --cacert=$pki/ca.crt --cert=$pki/healthcheck-client.crt --key=$pki/healthcheck-client.key endpoint health"
  [ "$status" -eq 0 ]
  [[ $output == *"https://127.0.0.1:$client is healthy"* ]]
  run on_node crictl exec "$id" sh -c 'command -v etcdutl'
  [ "$status" -eq 1 ]
  run on_node crictl exec "$id" etcdutl version
  [ "$status" -eq 1 ]
  # shellcheck disable=SC2016 # the container's $PATH, as the runtime says it
  [[ $output == *'exec: "etcdutl": executable file not found in $PATH'* ]]
  id=$(running_containers kube-apiserver)
  run on_node crictl exec "$id" etcdctl endpoint health
  [ "$status" -eq 1 ]
  run on_node crictl exec "$id" sh -c true
  [ "$status" -eq 1 ]
}
