#!/usr/bin/env bats
# The repair script's etcd step against a real etcd (Debian's etcd-server) on
# loopback: a single member on 127.0.0.2 holding keys is moved to 127.0.0.3.

SCRIPT="$BATS_TEST_DIRNAME/../../crates/lifeboat-core/scripts/lifeboat-repair.sh"
CLIENT_PORT=23791
PEER_PORT=23801

start_etcd() { # start_etcd IP
  etcd --name k8s-master --data-dir "$BATS_TEST_TMPDIR/etcd" \
    --listen-peer-urls "http://$1:$PEER_PORT" --initial-advertise-peer-urls "http://$1:$PEER_PORT" \
    --listen-client-urls "http://$1:$CLIENT_PORT" --advertise-client-urls "http://$1:$CLIENT_PORT" \
    --initial-cluster "k8s-master=http://$1:$PEER_PORT" >>"$BATS_TEST_TMPDIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 1 100); do
    etcdctl --endpoints "http://$1:$CLIENT_PORT" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$BATS_TEST_TMPDIR/etcd.log" >&2
  return 1
}

stop_etcd() {
  kill "$ETCD_PID" 2>/dev/null || true
  wait "$ETCD_PID" 2>/dev/null || true
}

setup() {
  command -v etcd >/dev/null || skip "etcd is not installed (apt-get install etcd-server)"
}

teardown() {
  stop_etcd
}

@test "the etcd step moves the member's peer URL and keeps the data" {
  start_etcd 127.0.0.2
  etcdctl --endpoints "http://127.0.0.2:$CLIENT_PORT" put /registry/namespaces/default default >/dev/null
  etcdctl --endpoints "http://127.0.0.2:$CLIENT_PORT" put /registry/secrets/kube-system/token s3cret >/dev/null

  export LIFEBOAT_ETCD_ENDPOINTS="http://127.0.0.2:$CLIENT_PORT"
  # shellcheck source=crates/lifeboat-core/scripts/lifeboat-repair.sh
  source "$SCRIPT"
  update_etcd_member 127.0.0.2 127.0.0.3
  run etcdctl --endpoints "http://127.0.0.2:$CLIENT_PORT" member list
  [[ $output == *", k8s-master, http://127.0.0.3:$PEER_PORT, http://127.0.0.2:$CLIENT_PORT,"* ]]
  # A second call finds it done.
  update_etcd_member 127.0.0.2 127.0.0.3

  # etcd restarted on the new address (as kubelet does with the rewritten
  # manifest) serves the same data with the new peer URL.
  stop_etcd
  start_etcd 127.0.0.3
  run etcdctl --endpoints "http://127.0.0.3:$CLIENT_PORT" member list
  [[ $output == *"http://127.0.0.3:$PEER_PORT"* && $output != *"127.0.0.2:$PEER_PORT"* ]]
  run etcdctl --endpoints "http://127.0.0.3:$CLIENT_PORT" get --print-value-only /registry/secrets/kube-system/token
  [ "$output" = s3cret ]
  run etcdctl --endpoints "http://127.0.0.3:$CLIENT_PORT" get --prefix --keys-only /registry
  [ "$(grep -c . <<<"$output")" -eq 2 ]
}
