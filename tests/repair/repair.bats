#!/usr/bin/env bats
# Each @test runs in a subshell of its own: exporting there is meant to stay local.
# shellcheck disable=SC2030,SC2031
# The on-node repair script against kubeadm-shaped fixture trees, with
# stand-ins for systemctl, crictl, kubeadm, kubectl, etcdctl and curl.

SCRIPT="$BATS_TEST_DIRNAME/../../crates/lifeboat-core/scripts/lifeboat-repair.sh"
OLD=10.0.1.10
NEW=10.0.1.77

bats_require_minimum_version 1.5.0

setup() {
  export ROOT="$BATS_TEST_TMPDIR/root"
  export FAKE_CLUSTER="$BATS_TEST_TMPDIR/cluster"
  export FAKE_LOG="$BATS_TEST_TMPDIR/calls.log"
  export PATH="$BATS_TEST_DIRNAME/bin:$PATH"
  export LIFEBOAT_ROOT="$ROOT" LIFEBOAT_WAIT_SECONDS=3
  export FAKE_NEW_IP=$NEW
  : >"$FAKE_LOG"
}

fixture() { # fixture API_VERSION
  "$BATS_TEST_DIRNAME/make-fixture.sh" "$ROOT" "$OLD" "$1" k8s-master
  # An unrelated address that only looks alike must survive.
  echo "# upstream resolver 10.0.1.100" >>"$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
}

sans() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -n 1; }

tree_sum() { (cd "$ROOT" && find etc var -type f -print0 | sort -z | xargs -0 sha256sum); }

last_json() { tail -n 1 <<<"$output"; }

assert_repaired() {
  [ "$status" -eq 3 ]
  [[ $(last_json) == '{"result":"repaired",'* ]]
  # No file under /etc/kubernetes still names the old address.
  run grep -rlwF "$OLD" "$ROOT/etc/kubernetes"
  [ "$status" -eq 1 ]
  grep -qF -- "--advertise-address=$NEW" "$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  grep -qF "host: $NEW" "$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  grep -qF -- "--initial-cluster=k8s-master=https://$NEW:2380" "$ROOT/etc/kubernetes/manifests/etcd.yaml"
  grep -qF "server: https://$NEW:6443" "$ROOT/etc/kubernetes/admin.conf"
  grep -qF "server: https://$NEW:6443" "$ROOT/etc/kubernetes/super-admin.conf"
  grep -qF "10.0.1.100" "$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  # The regenerated certificates carry the new address, not the old one.
  for cert in apiserver etcd/server etcd/peer; do
    sans "$ROOT/etc/kubernetes/pki/$cert.crt" | grep -qF "IP Address:$NEW"
    if sans "$ROOT/etc/kubernetes/pki/$cert.crt" | grep -qwF "IP Address:$OLD"; then return 1; fi
  done
  sans "$ROOT/etc/kubernetes/pki/apiserver.crt" | grep -qF "DNS:k8s-master"
  sans "$ROOT/etc/kubernetes/pki/apiserver.crt" | grep -qF "DNS:k8s.example.com"
  # The node name was kept.
  grep -qF "name: k8s-master" "$ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  # Backups of both trees, with the old address in them.
  backup=$(find "$ROOT/var/lib/lifeboat" -maxdepth 1 -name 'backup-*' | sort | head -n 1)
  grep -qF -- "--advertise-address=$OLD" "$backup/kubernetes/manifests/kube-apiserver.yaml"
  [ -f "$backup/etcd/member/snap/db" ]
  # etcd's member, the ConfigMaps, kube-proxy.
  grep -qF "https://$NEW:2380" "$FAKE_CLUSTER/etcd-members"
  grep -qF "server: https://$NEW:6443" "$FAKE_CLUSTER/applied-kube-proxy.yaml"
  grep -qF "server: https://$NEW:6443" "$FAKE_CLUSTER/applied-cluster-info.yaml"
  grep -qF "kubectl --kubeconfig $ROOT/etc/kubernetes/admin.conf -n kube-system rollout restart daemonset kube-proxy" "$FAKE_LOG"
  grep -qF "systemctl stop kubelet" "$FAKE_LOG"
  grep -qF "crictl stop 3f2a9c etcd7b1" "$FAKE_LOG"
  [ ! -e "$ROOT/var/lib/lifeboat/repair-state" ]
}

@test "a new IP is repaired everywhere (ClusterConfiguration v1beta3)" {
  fixture v1beta3
  run "$SCRIPT"
  assert_repaired
}

@test "a new IP is repaired everywhere (ClusterConfiguration v1beta4)" {
  fixture v1beta4
  run "$SCRIPT"
  assert_repaired
  grep -qF "apiVersion: kubeadm.k8s.io/v1beta4" "$ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
}

@test "a second run changes nothing" {
  fixture v1beta4
  run "$SCRIPT"
  [ "$status" -eq 3 ]
  before=$(tree_sum)
  run "$SCRIPT"
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
  [ "$(tree_sum)" == "$before" ]
}

@test "the same IP verifies and changes nothing" {
  fixture v1beta3
  export FAKE_NEW_IP=$OLD
  before=$(tree_sum)
  run "$SCRIPT"
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
  [ "$(tree_sum)" == "$before" ]
  run ! grep -qE "^(systemctl (stop|start)|kubeadm |crictl stop)" "$FAKE_LOG"
}

@test "the same IP with an apiserver that never gets ready fails at verify" {
  fixture v1beta3
  export FAKE_NEW_IP=$OLD FAKE_READYZ_FAIL=1
  run "$SCRIPT"
  [ "$status" -eq 21 ]
  [[ $(last_json) == '{"result":"failed","step":"verify",'* ]]
}

@test "a dry run prints the plan and changes nothing" {
  fixture v1beta4
  before=$(tree_sum)
  run "$SCRIPT" --dry-run
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"dry-run",'*"would back up, stop kubelet, replace $OLD by $NEW"* ]]
  [ "$(tree_sum)" == "$before" ]
  run ! grep -qE "^(systemctl (stop|start)|kubeadm |crictl stop)|apply" "$FAKE_LOG"
}

@test "a failure in the middle is reported with its step, and the next run repairs" {
  fixture v1beta3
  export FAKE_KUBEADM_FAIL_ONCE="$BATS_TEST_TMPDIR/kubeadm-failed"
  run "$SCRIPT"
  [ "$status" -eq 15 ]
  [[ $(last_json) == '{"result":"failed","step":"certificates",'* ]]
  [ -e "$ROOT/var/lib/lifeboat/repair-state" ]
  run "$SCRIPT"
  assert_repaired
  [ "$(find "$ROOT/var/lib/lifeboat" -maxdepth 1 -name 'backup-*' | wc -l)" -eq 2 ]
}

@test "quarantine moves the controller-manager aside before kubelet starts" {
  fixture v1beta3
  touch "$ROOT/etc/kubernetes/manifests/cloud-controller-manager.yaml"
  run "$SCRIPT" --quarantine
  [[ $(last_json) == *'"quarantine":true'* ]]
  assert_repaired
  [ ! -e "$ROOT/etc/kubernetes/manifests/kube-controller-manager.yaml" ]
  [ ! -e "$ROOT/etc/kubernetes/manifests/cloud-controller-manager.yaml" ]
  [ -f "$ROOT/etc/kubernetes/lifeboat-quarantine/kube-controller-manager.yaml" ]
  [ -f "$ROOT/etc/kubernetes/manifests/kube-scheduler.yaml" ]
}

@test "no apiserver manifest: not a control plane, failed at detect" {
  mkdir -p "$ROOT/etc/kubernetes"
  run "$SCRIPT"
  [ "$status" -eq 10 ]
  [[ $(last_json) == '{"result":"failed","step":"detect",'*"not a kubeadm control plane"* ]]
}

@test "an unknown argument is a usage error" {
  run "$SCRIPT" --force
  [ "$status" -eq 2 ]
}
