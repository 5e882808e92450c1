#!/usr/bin/env bats
# Each @test runs in a subshell of its own: exporting there is meant to stay local.
# shellcheck disable=SC2030,SC2031
# lifeboat-repair.sh --health on the fixture node, with a stock node's PATH (no
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
  [ "$(last_json)" = "{\"result\":\"ok\",\"step\":\"health\",\"readyz\":true,\"etcd\":true,\"node_ready\":true,\"mounts\":true,\"internal_ip\":\"$NEW\",\"message\":\"node k8s-master Ready on $NEW; apiserver ready; etcd healthy; data volumes mounted\"}" ]
  grep -qE "^crictl exec [0-9a-f]+ etcdctl .*--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt .* endpoint health" "$FAKE_LOG"
  grep -qE "^kubectl --kubeconfig [^ ]*/etc/kubernetes/admin.conf --server https://$NEW:6443 .*get --raw /readyz" "$FAKE_LOG"
}

@test "it also runs from stdin, as SSM sends it" {
  repaired
  run on_node bash -s -- --health k8s-master --timeout 30 <"$SCRIPT"
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

@test "a tab in a message keeps the result line valid JSON" {
  run health k8s-master $'--bad\targument'
  [ "$status" -eq 2 ]
  [ "$(json_field message)" = "unknown argument '--bad argument'" ]
}

@test "a dual-stack Node is healthy when one of its InternalIPs is the node's IP" {
  repaired
  on_node systemctl stop kubelet
  test_etcdctl 127.0.0.1 put /registry/minions/k8s-master "$(printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: k8s-master\nstatus:\n  addresses:\n  - address: %s\n    type: InternalIP\n  - address: fd00::77\n    type: InternalIP\n  conditions:\n  - status: "True"\n    type: Ready\n' "$NEW")" >/dev/null
  run health k8s-master --timeout 10
  [ "$status" -eq 0 ]
  [ "$(json_field internal_ip)" = "$NEW fd00::77" ]
}

@test "a CIS-hardened apiserver (--anonymous-auth=false) on its own --secure-port: /readyz asked there with admin.conf" {
  harden_apiserver 16443
  repaired
  # The stand-in refuses what the apiserver refuses: anonymous, or the wrong port.
  run on_node curl -sf --cacert "$FAKE_ROOT/etc/kubernetes/pki/ca.crt" "https://$NEW:16443/readyz"
  [ "$status" -eq 22 ]
  run on_node curl -sf --cacert "$FAKE_ROOT/etc/kubernetes/pki/ca.crt" "https://$NEW:6443/readyz"
  [ "$status" -eq 7 ]
  # With admin.conf's client certificate it answers.
  for field in client-certificate client-key; do
    sed -n "s/^ *$field-data: //p" "$FAKE_ROOT/etc/kubernetes/admin.conf" | base64 -d >"$FIXTURE/admin.$field"
  done
  run on_node curl -sf --cacert "$FAKE_ROOT/etc/kubernetes/pki/ca.crt" --cert "$FIXTURE/admin.client-certificate" \
    --key "$FIXTURE/admin.client-key" "https://$NEW:16443/readyz"
  [ "$status" -eq 0 ]
  [ "$output" = ok ]
  : >"$FAKE_LOG"
  run health k8s-master --timeout 30
  [ "$status" -eq 0 ]
  grep -qE "^kubectl --kubeconfig $FAKE_ROOT/etc/kubernetes/admin.conf --server https://$NEW:16443 .*get --raw /readyz" "$FAKE_LOG"
}

@test "a data volume lifeboat attached but not mounted where fstab says is not healthy; without lifeboat's record every fstab mount counts" {
  repaired
  printf '/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0d0d0d0d0d0d00004\t/var/lib/data\text4\tdefaults,nofail\t0 2\n' >>"$FAKE_ROOT/etc/fstab"
  sed -i "s/^DATA_VOLUMES=.*/DATA_VOLUMES='vol-0d0d0d0d0d0d00004=\/dev\/sdg'/" "$FAKE_ROOT/run/lifeboat/guard.conf"
  run health k8s-master --timeout 4
  [ "$status" -eq 1 ]
  [ "$(json_field mounts)" = False ]
  [ "$(json_field node_ready)" = True ]
  [[ $(json_field message) == *"/var/lib/data is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0d0d0d0d0d0d00004, data volume vol-0d0d0d0d0d0d00004)" ]]
  rm "$FAKE_ROOT/run/lifeboat/guard.conf"
  run health k8s-master --timeout 4
  [ "$status" -eq 1 ]
  [[ $(json_field message) == *"/var/lib/data is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0d0d0d0d0d0d00004; no record of lifeboat's data volumes (/run/lifeboat/guard.conf): every fstab mount checked)" ]]
  # The kernel mounts it.
  printf '40 25 259:6 / /var/lib/data rw,relatime shared:40 - ext4 /dev/nvme3n1 rw\n' >>"$FAKE_ROOT/proc/self/mountinfo"
  run health k8s-master --timeout 10
  [ "$status" -eq 0 ]
  [ "$(json_field mounts)" = True ]
}
