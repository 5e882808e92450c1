#!/usr/bin/env bats
# Each @test runs in a subshell of its own: exporting there is meant to stay local.
# shellcheck disable=SC2030,SC2031
# lifeboat-health.sh on the fixture node, with a stock node's PATH (no
# etcdctl): the apiserver's /readyz, etcd through crictl exec, the Node Ready
# on the node's IP; one JSON line; exit 0 only when healthy.

OLD=127.0.0.10
NEW=127.0.0.77

setup() {
  load helpers
  node_setup
  make_fixture "$OLD"
  node_host "$NEW" ip-127-0-0-77
  # A drill clone: fenced off the live node (OLD), with the drill's profile.
  echo arn:aws:iam::123456789012:instance-profile/lifeboat-drill >"$FAKE_NODE/host/instance-profile"
  node_boot --fence "$OLD" --vpc 10.0.0.0/16
}

teardown() {
  node_teardown
}

repaired() {
  run repair --quarantine --timeout 120
  [ "$status" -eq 3 ]
}

@test "a repaired clone is healthy: one JSON line, exit 0, etcd reached through crictl" {
  repaired
  : >"$FAKE_LOG"
  [ ! -e "$STOCK_BIN/etcdctl" ]
  run health k8s-master --timeout 30
  [ "$status" -eq 0 ]
  [ "$(last_json)" = "{\"result\":\"ok\",\"step\":\"health\",\"readyz\":true,\"etcd\":true,\"node_ready\":true,\"internal_ip\":\"$NEW\",\"message\":\"node k8s-master Ready on $NEW; apiserver ready; etcd healthy\"}" ]
  grep -qE "^crictl exec [0-9a-f]+ etcdctl .*--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt .* endpoint health" "$FAKE_LOG"
  grep -qF "https://$NEW:6443/readyz" "$FAKE_LOG"
}

@test "it also runs from stdin, as SSM sends it" {
  repaired
  run on_node bash -s -- k8s-master --timeout 30 <"$HEALTH"
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
}

@test "a Node whose InternalIP is not the node's IP is not healthy" {
  repaired
  # kubelet stops posting; the Node says another address.
  on_node systemctl stop kubelet
  test_etcdctl 127.0.0.1 put /registry/minions/k8s-master "$(printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: k8s-master\nstatus:\n  addresses:\n  - address: 10.9.9.9\n    type: InternalIP\n  conditions:\n  - status: "True"\n    type: Ready\n')" >/dev/null
  run health k8s-master --timeout 4
  [ "$status" -eq 1 ]
  [ "$(json_field node_ready)" = False ]
  [ "$(json_field internal_ip)" = 10.9.9.9 ]
  [ "$(json_field readyz)" = True ]
  [ "$(json_field etcd)" = True ]
  [[ $(json_field message) == *"node k8s-master is not Ready on $NEW (Ready=True, InternalIP=10.9.9.9)"* ]]
}

@test "a Node registered under another name does not count" {
  repaired
  run health ip-127-0-0-77 --timeout 4
  [ "$status" -eq 1 ]
  [ "$(json_field node_ready)" = False ]
}

@test "etcd down: not healthy, within the budget" {
  repaired
  on_node systemctl stop kubelet
  on_node crictl stop "$(running_containers etcd)" >/dev/null
  start=$SECONDS
  run health k8s-master --timeout 5
  [ "$status" -eq 1 ]
  ((SECONDS - start < 20))
  [ "$(json_field etcd)" = False ]
  [ "$(json_field readyz)" = False ]
  [ "$(json_field result)" = failed ]
}

@test "the node name is required" {
  run health --timeout 5
  [ "$status" -eq 2 ]
  [[ $(last_json) == '{"result":"failed","step":"health",'* ]]
}
