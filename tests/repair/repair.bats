#!/usr/bin/env bats
# Each @test runs in a subshell of its own: exporting there is meant to stay local.
# shellcheck disable=SC2030,SC2031
# The repair script on a kubeadm-shaped fixture node (tests/repair/make-fixture.sh)
# with a stock node's PATH: the host's tools, the stand-ins of tests/repair/bin
# (systemctl, crictl, kubeadm, kubectl, curl, hostname, iptables), no etcdctl.
# The etcd is real (over TLS, on loopback); the cluster's objects live in it.

OLD=127.0.0.10
NEW=127.0.0.77

setup() {
  load helpers
  node_setup
}

teardown() {
  node_teardown
}

# The node restored on a new instance: NEW, a host name of its own.
relaunched() { # relaunched [make-fixture options]
  make_fixture "$OLD" "$@"
  node_host "$NEW" ip-127-0-0-77
}

# Checks a repaired node; RESULT: the result line.
assert_repaired() {
  local result
  result=$(last_json)
  RESULT=$result
  [ "$status" -eq 3 ]
  [[ $result == '{"result":"repaired",'* ]]
  [ "$(json_field node "$result")" = k8s-master ]
  # No file of the node names the old address any more; a look-alike survives.
  run grep -rlE "(^|[^0-9.])${OLD//./\\.}([^0-9.]|$)" "$FAKE_ROOT/etc/kubernetes" "$FAKE_ROOT/etc/hosts" "$FAKE_ROOT/var/lib/kubelet"
  [ "$status" -eq 1 ]
  grep -qF -- "--advertise-address=$NEW" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  grep -qF "host: $NEW" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  grep -qF "${OLD}0 upstream.example" <(cluster_object /registry/configmaps/kube-system/coredns)
  grep -qF "# upstream resolver ${OLD}0" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  grep -qE -- "--initial-cluster=k8s-master=https://$NEW:[0-9]+$" "$FAKE_ROOT/etc/kubernetes/manifests/etcd.yaml"
  grep -qF "server: https://$NEW:6443" "$FAKE_ROOT/etc/kubernetes/admin.conf"
  grep -qF "server: https://$NEW:6443" "$FAKE_ROOT/etc/kubernetes/kubelet.conf"
  # The new certificates carry the new address and every other name.
  for cert in apiserver:ca etcd/server:etcd/ca etcd/peer:etcd/ca; do
    sans "$FAKE_ROOT/etc/kubernetes/pki/${cert%:*}.crt" | grep -qF "IP Address:$NEW"
    run grep -qwF "IP Address:$OLD" <(sans "$FAKE_ROOT/etc/kubernetes/pki/${cert%:*}.crt")
    [ "$status" -eq 1 ]
    openssl verify -CAfile "$FAKE_ROOT/etc/kubernetes/pki/${cert#*:}.crt" "$FAKE_ROOT/etc/kubernetes/pki/${cert%:*}.crt"
  done
  sans "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt" | grep -qF "DNS:k8s.example.com"
  sans "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt" | grep -qF "DNS:k8s-master"
  sans "$FAKE_ROOT/etc/kubernetes/pki/etcd/server.crt" | grep -qF "DNS:localhost"
  # Backups, the first one of the old state.
  [ -d "$FAKE_ROOT$(json_field backup "$result")/etcd/member" ]
  backup=$(find "$FAKE_ROOT/var/lib/lifeboat" -maxdepth 1 -name 'backup-*' | sort | head -n 1)
  grep -qF -- "--advertise-address=$OLD" "$backup/kubernetes/manifests/kube-apiserver.yaml"
  # etcd's member, over TLS on the new address.
  test_etcdctl "$NEW" member list | grep -qE ", k8s-master, https://$NEW:[0-9]+, https://$NEW:[0-9]+, false$"
  # The cluster's own copy of the configuration (issue: the next kubeadm
  # upgrade reads it) and the kubeconfigs it hands out.
  cluster_object /registry/configmaps/kube-system/kubeadm-config | grep -qF "controlPlaneEndpoint: $NEW:6443"
  cluster_object /registry/configmaps/kube-system/kubeadm-config | grep -qF -- "- $NEW"
  cluster_object /registry/configmaps/kube-system/kube-proxy | grep -qF "server: https://$NEW:6443"
  cluster_object /registry/configmaps/kube-public/cluster-info | grep -qF "server: https://$NEW:6443"
  run grep -rlF "$OLD" <(cluster_object /registry/configmaps/kube-system/kubeadm-config)
  [ "$status" -eq 1 ]
  # The Node, Ready with its new address; kube-proxy talks to the new one.
  cluster_object /registry/minions/k8s-master | grep -qF "address: $NEW"
  container_view kube-proxy | grep -qF "server: https://$NEW:6443"
  [ ! -e "$FAKE_ROOT/var/lib/lifeboat/repair-state" ]
  [ ! -e "$FAKE_ROOT/etc/kubernetes/lifeboat/cluster-configuration.yaml" ]
}

@test "a new IP is repaired from the node's own files, with the tools of a stock node (kubeadm v1.30, v1beta3)" {
  relaunched --api v1beta3
  export FAKE_KUBEADM_VERSION=v1.30.6
  sed -i 's/v1\.31\.2/v1.30.6/' "$FAKE_ROOT"/etc/kubernetes/manifests/*.yaml
  node_boot --cloud-init
  [ ! -e "$STOCK_BIN/etcdctl" ]
  run repair --timeout 120
  assert_repaired
  grep -qF "apiVersion: kubeadm.k8s.io/v1beta3" "$FAKE_ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  grep -qF "name: k8s-master" "$FAKE_ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  # etcd reached only through the CRI, with kubeadm's healthcheck client.
  grep -qE "^crictl exec [0-9a-f]+ etcdctl .*--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt .* member update " "$FAKE_LOG"
  [ "$(json_field guard "$RESULT")" = released ]
}

@test "a new IP is repaired from the node's own files (kubeadm v1.31, v1beta4)" {
  relaunched --api v1beta4
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  grep -qF "apiVersion: kubeadm.k8s.io/v1beta4" "$FAKE_ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  [[ $(json_field changed "$RESULT") == *'"configmap kube-system/kubeadm-config"'* ]]
}

@test "kubeadm-config is rewritten in the cluster, and a copy cached by an earlier version is rewritten too" {
  relaunched
  mkdir -p "$FAKE_ROOT/etc/kubernetes/lifeboat"
  sed -n '/ClusterConfiguration: |/,/^kind:/p' "$FIXTURE/objects/configmaps_kube-system_kubeadm-config" |
    sed '1d;$d; s/^    //' >"$FAKE_ROOT/etc/kubernetes/lifeboat/cluster-configuration.yaml"
  grep -qF "controlPlaneEndpoint: $OLD:6443" "$FAKE_ROOT/etc/kubernetes/lifeboat/cluster-configuration.yaml"
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qF "controlPlaneEndpoint: $NEW:6443" "$FAKE_ROOT/etc/kubernetes/lifeboat/cluster-configuration.yaml"
  cluster_object /registry/configmaps/kube-system/kubeadm-config | grep -qF "controlPlaneEndpoint: $NEW:6443"
}

@test "a second run changes nothing" {
  relaunched
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  before=$(tree_sum)
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
  [ "$(json_field changed)" = "[]" ]
  [ "$(tree_sum)" == "$before" ]
}

@test "the same IP verifies through the CRI and changes nothing" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot --cloud-init
  before=$(tree_sum)
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok","step":"verify",'* ]]
  [ "$(json_field guard)" = released ]
  [ "$(tree_sum)" == "$before" ]
  run ! grep -qE "^(systemctl stop|kubeadm |crictl stop|kubectl .*replace)" "$FAKE_LOG"
  grep -qE "^crictl exec [0-9a-f]+ etcdctl .* endpoint health" "$FAKE_LOG"
}

@test "all waits share one budget: an apiserver that never gets ready fails verify when --timeout is spent" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  # The apiserver's etcd address leads nowhere: it never gets ready.
  sed -i -E 's#(--etcd-servers=https://127.0.0.1:)[0-9]+#\11#' "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  node_boot --cloud-init
  start=$SECONDS
  run repair --timeout 8
  elapsed=$((SECONDS - start))
  [ "$status" -eq 23 ]
  [[ $(last_json) == '{"result":"failed","step":"verify",'*"within the budget"* ]]
  ((elapsed >= 8 && elapsed < 25))
}

@test "a signal (SSM's executionTimeout) is reported with the step it interrupted" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  sed -i -E 's#(--etcd-servers=https://127.0.0.1:)[0-9]+#\11#' "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  node_boot --cloud-init
  (
    node_env
    exec env -i "${NODE_ENV[@]}" "$SCRIPT" --timeout 60
  ) >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
  pid=$!
  until grep -q "lifeboat-repair \[release\] kubelet started" "$BATS_TEST_TMPDIR/out"; do sleep 0.2; done
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  [ "$status" -eq 23 ]
  [[ $(tail -n 1 "$BATS_TEST_TMPDIR/out") == '{"result":"failed","step":"verify",'*'"message":"interrupted by a signal"}' ]]
}

# The repair's watchdog, by its name and the node it watches.
watchdogs() { pgrep -f "lifeboat-repair-watchdog [0-9]+ [0-9]+ $FAKE_ROOT/" || true; }

@test "a repair killed outright while kubelet is stopped (SSM's executionTimeout: SIGKILL to its process group) leaves kubelet started" {
  relaunched
  node_boot
  on_node systemctl is-active kubelet
  # crictl stop hangs: the kill lands while kubelet is stopped.
  wrap_tool crictl <<'SH'
if [[ $1 == stop ]]; then touch "$FAKE_NODE/crictl-stop"; sleep 60; fi
exec "$REAL" "$@"
SH
  (
    node_env
    exec setsid env -i "${NODE_ENV[@]}" "$SCRIPT" --timeout 60
  ) >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
  pid=$!
  until [ -e "$FAKE_NODE/crictl-stop" ]; do sleep 0.2; done
  run on_node systemctl is-active kubelet
  [ "$output" = inactive ]
  [ -n "$(watchdogs)" ]
  # As amazon-ssm-agent does: SIGKILL to the process group, no trap runs.
  kill -KILL -- "-$pid"
  wait "$pid" || true
  for _ in $(seq 50); do [ -n "$(watchdogs)" ] || break; sleep 0.2; done
  [ -z "$(watchdogs)" ]
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
  grep -qF "died with kubelet stopped: started it again" "$FAKE_ROOT/run/lifeboat/repair-watchdog.log"
  [ ! -e "$FAKE_ROOT/run/lifeboat/repair-stopped-kubelet" ]
  # No result line: the kill left none. The next run finishes the repair.
  run ! grep -q '^{"result"' "$BATS_TEST_TMPDIR/out"
  unwrap_tool crictl
  run repair --timeout 120
  assert_repaired
}

@test "a finished repair leaves no watchdog behind" {
  relaunched
  node_boot
  run repair --timeout 120
  [ "$status" -eq 3 ]
  [ -z "$(watchdogs)" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/repair-stopped-kubelet" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/repair-watchdog.log" ]
}

@test "a run still going past its budget is stopped by the watchdog and reported with its step, before SSM's kill" {
  relaunched
  node_boot
  wrap_tool kubeadm <<'SH'
if [[ $* == "init phase certs"* ]]; then exec sleep 120; fi
exec "$REAL" "$@"
SH
  start=$SECONDS
  run repair --timeout 8
  elapsed=$((SECONDS - start))
  [ "$status" -eq 16 ]
  [[ $(last_json) == '{"result":"failed","step":"certificates",'*'still running 30s after the --timeout budget of 8s'* ]]
  ((elapsed >= 38 && elapsed < 50))
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
  [ -z "$(watchdogs)" ]
}

@test "one repair at a time: a second one waits for the lock within its budget" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot --cloud-init
  mkdir -p "$FAKE_ROOT/run/lifeboat"
  # Another repair holds the node's lock.
  flock "$FAKE_ROOT/run/lifeboat/repair.lock" sleep 30 &
  holder=$!
  sleep 0.5
  : >"$FAKE_LOG"
  run repair --timeout 3
  kill "$holder"
  wait "$holder" || true
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*"another lifeboat repair of this node still runs"* ]]
  run ! grep -qE "^systemctl (stop|start)" "$FAKE_LOG"
  # Once it is free, the next one goes through.
  run repair --timeout 120
  [ "$status" -eq 0 ]
}

@test "a dry run prints the plan and changes nothing" {
  relaunched
  node_boot
  : >"$FAKE_LOG"
  before=$(tree_sum)
  run repair --dry-run
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"dry-run",'*"would back up, stop kubelet, replace $OLD by $NEW"* ]]
  [ "$(tree_sum)" == "$before" ]
  run ! grep -qE "^(systemctl (stop|start)|kubeadm init|crictl stop)|replace" "$FAKE_LOG"
}

@test "a dry run on the same IP checks what a relaunch onto a new IP needs too, and reports it without failing" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot
  : >"$FAKE_LOG"
  run repair --dry-run
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"dry-run",'*'"relaunch":"ok",'* ]]
  [ "$(json_field warnings)" = "[]" ]
  # A relaunch's needs, missing: the same IP still passes, the field says what.
  rm "$FAKE_ROOT/etc/kubernetes/pki/etcd/ca.key"
  before=$(tree_sum)
  run repair --dry-run
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"dry-run",'*'"relaunch":"/etc/kubernetes/pki/etcd/ca.key is missing: kubeadm cannot make the new certificates without it",'* ]]
  [[ $(json_field warnings) == *'a relaunch onto a new IP would fail: /etc/kubernetes/pki/etcd/ca.key is missing'* ]]
  rm "$STOCK_BIN/kubeadm"
  run repair --dry-run
  [ "$status" -eq 0 ]
  [[ $(last_json) == *'"relaunch":"missing on the node: kubeadm",'* ]]
  [ "$(tree_sum)" == "$before" ]
  run ! grep -qE "^(systemctl (stop|start)|kubeadm init|crictl stop)" "$FAKE_LOG"
}

@test "a dry run fails on a tool only verify uses; a repair on the same IP starts kubelet anyway and fails verify naming it" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot --cloud-init
  run on_node systemctl is-active kubelet
  [ "$output" = inactive ]
  rm "$STOCK_BIN/kubectl"
  run repair --dry-run
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*'"message":"missing on the node: kubectl"}' ]]
  # The repair itself: the control plane is not kept down for a tool that only verifies.
  run repair --timeout 60
  [ "$status" -eq 23 ]
  [[ $(last_json) == '{"result":"failed","step":"verify",'*'"message":"kubelet is started, but the control plane cannot be verified: missing on the node: kubectl"}' ]]
  [ "$(json_field guard)" = released ]
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
}

@test "prerequisites are checked before anything is stopped" {
  relaunched
  node_boot
  on_node systemctl is-active kubelet
  before=$(tree_sum)
  rm "$FAKE_ROOT/etc/kubernetes/pki/etcd/ca.key"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*"pki/etcd/ca.key is missing"* ]]
  run ! grep -qE "^systemctl stop|^crictl stop" "$FAKE_LOG"
  on_node systemctl is-active kubelet

  # No kubeadm on the node: found before anything is stopped too.
  rm "$STOCK_BIN/kubeadm"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == *'"message":"missing on the node: kubeadm"'* ]]
  run ! grep -qE "^systemctl stop|^crictl stop" "$FAKE_LOG"
}

@test "too little disk for the backup: the repair refuses before anything is stopped" {
  relaunched
  node_boot
  # df -P as coreutils prints it, with 100 KiB available on every file system.
  wrap_tool df <<'SH'
set -o pipefail
"$REAL" "$@" | awk 'NR == 1 { print; next } { $4 = 100; print }'
SH
  [ "$(on_node df -Pk "$FAKE_ROOT/var/lib" | awk 'NR == 2 {print $4}')" = 100 ]
  : >"$FAKE_LOG"
  before=$(tree_sum)
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*'"message":"not enough disk for the backup in /var/lib/lifeboat: '[0-9]*' KiB needed, 100 KiB free"}' ]]
  run ! grep -qE "^systemctl stop|^crictl stop" "$FAKE_LOG"
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
  [ "$(tree_sum)" == "$before" ]
  [ ! -e "$FAKE_ROOT/var/lib/lifeboat/repair-state" ]
}

@test "a failure after kubelet was stopped starts it again, is reported with its step, and the next run finishes" {
  relaunched
  node_boot
  export FAKE_KUBEADM_FAIL_ONCE=$BATS_TEST_TMPDIR/kubeadm-failed
  run repair --timeout 120
  [ "$status" -eq 16 ]
  [[ $(last_json) == '{"result":"failed","step":"certificates",'* ]]
  grep -qF "systemctl stop kubelet" "$FAKE_LOG"
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
  [ -e "$FAKE_ROOT/var/lib/lifeboat/repair-state" ]
  # The repair started kubelet itself: its watchdog is gone, having done nothing.
  [ -z "$(watchdogs)" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/repair-stopped-kubelet" ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/repair-watchdog.log" ]
  run repair --timeout 120
  assert_repaired
  [ "$(find "$FAKE_ROOT/var/lib/lifeboat" -maxdepth 1 -name 'backup-*' | wc -l)" -eq 2 ]
}

@test "a move cut short and its node relaunched on a third address is refused, naming both and the backup" {
  relaunched
  node_boot
  export FAKE_KUBEADM_FAIL_ONCE=$BATS_TEST_TMPDIR/kubeadm-failed
  run repair --timeout 120
  [ "$status" -eq 16 ]
  backup=$(json_field backup)
  [ -n "$backup" ]
  # The instance is lost and relaunched from these disks on another address.
  node_host 127.0.0.88 ip-127-0-0-88
  before=$(cat "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml")
  run repair --timeout 120
  [ "$status" -eq 10 ]
  [ "$(json_field step)" = detect ]
  [[ $(json_field message) == *"a move from $OLD to $NEW stopped half way, and this instance is on 127.0.0.88"*"from $backup, remove"* ]]
  [ "$(cat "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml")" = "$before" ]
}

@test "an unexpected failure after kubelet was stopped (a full disk during the backup) goes through the ERR trap and starts kubelet again" {
  relaunched
  node_boot
  # cp as coreutils fails on a full disk: every copy into a backup fails.
  wrap_tool cp <<'SH'
for arg; do
  if [[ $arg == */var/lib/lifeboat/backup-* ]]; then
    echo "cp: error writing '$arg': No space left on device" >&2
    exit 1
  fi
done
exec "$REAL" "$@"
SH
  : >"$FAKE_LOG"
  run repair --timeout 120
  [ "$status" -eq 13 ]
  # Not one of the script's own fail calls: the ERR trap's report.
  [[ $(last_json) == '{"result":"failed","step":"backup",'*'"message":"unexpected failure of '\''cp -a '*"(line "[0-9]*')"}' ]]
  [[ $output == *"kubelet started again after the failure"* ]]
  [ "$(grep -E '^systemctl (start|stop) kubelet$' "$FAKE_LOG" | paste -sd,)" = "systemctl stop kubelet,systemctl start kubelet" ]
  run on_node systemctl is-active kubelet
  [ "$output" = active ]
  # Nothing was rewritten yet; the state file lets the next run finish.
  grep -qF -- "--advertise-address=$OLD" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  [ -e "$FAKE_ROOT/var/lib/lifeboat/repair-state" ]
  unwrap_tool cp
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qF -- "--advertise-address=$OLD" "$FAKE_ROOT$(json_field backup)/kubernetes/manifests/kube-apiserver.yaml"
  grep -qF -- "--advertise-address=$NEW" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
}

@test "etcd's data is copied only once etcd has stopped, and the copy opens" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot
  # The node runs; etcd is live.
  until test_etcdctl 127.0.0.1 endpoint health >/dev/null 2>&1; do sleep 0.2; done
  test_etcdctl 127.0.0.1 put /registry/secrets/default/written-last s3cret >/dev/null
  node_host "$NEW" ip-127-0-0-77
  run repair --timeout 120
  [ "$status" -eq 3 ]
  stopped=$(grep -n "lifeboat-repair \[stop\] kubelet and the control-plane containers are stopped" <<<"$output" | cut -d: -f1)
  backed_up=$(grep -n "lifeboat-repair \[backup\] backed up" <<<"$output" | cut -d: -f1)
  ((stopped < backed_up))
  grep -q "^containerd: stopped etcd" "$FAKE_LOG"
  # The copy is a database etcd opens, with the last write in it.
  backup=$FAKE_ROOT$(json_field backup)
  read -r client peer < <(free_ports 2)
  etcd --data-dir "$backup/etcd" --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
    >"$BATS_TEST_TMPDIR/backup-etcd.log" 2>&1 3>&- &
  pid=$!
  for _ in $(seq 1 50); do
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  value=$(ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client" get --print-value-only /registry/secrets/default/written-last)
  kill "$pid"
  wait "$pid" || true
  [ "$value" = s3cret ]
}

@test "quarantine: the controllers never start, kube-proxy is restarted through the CRI" {
  relaunched
  touch "$FAKE_ROOT/etc/kubernetes/manifests/cloud-controller-manager.yaml"
  echo arn:aws:iam::123456789012:instance-profile/lifeboat-drill >"$FAKE_NODE/host/instance-profile"
  node_boot --fence "$OLD" --vpc 10.0.0.0/16
  run repair --quarantine --timeout 120
  [[ $(last_json) == *'"quarantine":true'* ]]
  assert_repaired
  [ ! -e "$FAKE_ROOT/etc/kubernetes/manifests/kube-controller-manager.yaml" ]
  [ ! -e "$FAKE_ROOT/etc/kubernetes/manifests/cloud-controller-manager.yaml" ]
  [ -f "$FAKE_ROOT/etc/kubernetes/lifeboat-quarantine/kube-controller-manager.yaml" ]
  [ -f "$FAKE_ROOT/etc/kubernetes/manifests/kube-scheduler.yaml" ]
  run ! grep -q "kubelet: started kube-controller-manager" "$FAKE_LOG"
  # The DaemonSet controller is quarantined: kubelet recreated the container.
  run ! grep -q "rollout restart" "$FAKE_LOG"
  grep -qE "^crictl stop [0-9a-f]+$" "$FAKE_LOG"
  grep -qE "^crictl rm [0-9a-f]+$" "$FAKE_LOG"
  [[ $(json_field changed "$RESULT") == *"daemonset kube-system/kube-proxy: containers restarted through the CRI"* ]]
}

@test "without quarantine kube-proxy is restarted by its DaemonSet (rollout restart)" {
  relaunched
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  grep -qF "rollout restart daemonset kube-proxy" "$FAKE_LOG"
  grep -qF "daemonset-controller: replacing the pod of kube-system/kube-proxy" "$FAKE_LOG"
}

@test "the node keeps its name when the replacement's host name differs" {
  make_fixture "$OLD"
  node_host "$OLD" ip-10-0-1-23.ec2.internal
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  [[ $(last_json) == '{"result":"repaired","step":"verify",'* ]]
  [ "$(json_field node)" = k8s-master ]
  [[ $(json_field changed) == '["/var/lib/kubelet/kubeadm-flags.env"]' ]]
  # As kubeadm writes it: one variable, the flags sorted by name.
  [ "$(cat "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env")" = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --hostname-override=k8s-master --pod-infra-container-image=registry.k8s.io/pause:3.10"' ]
  cluster_object /registry/minions/k8s-master | grep -qF "address: $OLD"
  [ -z "$(cluster_object /registry/minions/ip-10-0-1-23.ec2.internal)" ]
}

@test "the node's name comes from kubelet's client certificate when kubelet.conf says default-auth" {
  relaunched --kubelet-cert file
  run grep -c "system:node:" "$FAKE_ROOT/etc/kubernetes/kubelet.conf"
  [ "$output" -eq 0 ]
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  grep -qF -- "--hostname-override=k8s-master" "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
}

@test "verify requires the Node Ready on the node's IP: a kubelet pinned to another address fails it" {
  relaunched
  # An operator's pin to an address the node does not have: kubelet's status
  # updates fail, the Node keeps the old address.
  echo 'KUBELET_EXTRA_ARGS="--node-ip=10.9.9.9"' >"$FAKE_ROOT/etc/default/kubelet"
  node_boot --cloud-init
  run repair --timeout 20
  [ "$status" -eq 23 ]
  [[ $(last_json) == *"node k8s-master is not Ready on $NEW (Ready=True, InternalIP=$OLD)"* ]]
}

@test "kubelet's --node-ip and CNI settings that name the old IP are rewritten and listed" {
  relaunched --node-ip --cni cilium,tigera,flannel
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  changed=$(json_field changed "$RESULT")
  for item in /var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet "configmap kube-system/cilium-config" \
    "configmap tigera-operator/kubernetes-services-endpoint" "daemonset calico-system/calico-node" \
    "daemonset kube-flannel/kube-flannel-ds"; do
    [[ $changed == *"\"$item\""* ]]
  done
  grep -qF -- "--node-ip=$NEW" "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  grep -qF -- "--node-ip=$NEW" "$FAKE_ROOT/etc/default/kubelet"
  cluster_object /registry/configmaps/kube-system/cilium-config | grep -qF "k8s-service-host: $NEW"
  cluster_object /registry/configmaps/tigera-operator/kubernetes-services-endpoint | grep -qF "KUBERNETES_SERVICE_HOST: $NEW"
  cluster_object /registry/daemonsets/calico-system/calico-node | grep -qF "value: $NEW"
  cluster_object /registry/daemonsets/kube-flannel/kube-flannel-ds | grep -qF "value: $NEW"
  # Cilium's agent reads its ConfigMap at start: restarted with the new one.
  container_view cilium-agent | grep -qF "k8s-service-host: $NEW"
  grep -qF "rollout restart daemonset cilium" "$FAKE_LOG"
}

@test "text files in the subdirectories of /etc/kubernetes are rewritten and listed; pki/, tmp/, the quarantine and binary files are not" {
  relaunched
  k=$FAKE_ROOT/etc/kubernetes
  backup=$k/tmp/kubeadm-backup-manifests-2026-12-01-10-00-00
  mkdir -p "$k/audit" "$k/authn" "$backup" "$k/lifeboat-quarantine"
  # The audit webhook's kubeconfig (--audit-webhook-config-file) and a
  # structured authentication configuration, both naming the old address.
  cat >"$k/audit/webhook.yaml" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: audit-sink
  cluster:
    server: https://$OLD:8443/audit
contexts:
- name: default
  context:
    cluster: audit-sink
current-context: default
YAML
  cat >"$k/authn/config.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://$OLD:9443/dex
    audiences:
    - kubernetes
  claimMappings:
    username:
      claim: email
      prefix: ""
YAML
  printf 'IP.1 = %s\n' "$OLD" >"$k/pki/apiserver-san.cnf"
  cp "$k/manifests/kube-apiserver.yaml" "$backup/kube-apiserver.yaml"
  printf 'server: https://%s:6443\n' "$OLD" >"$k/lifeboat-quarantine/kept.yaml"
  printf '\0\1%s\0' "$OLD" >"$k/audit/state.bin"
  kept() { sha256sum "$k/pki/apiserver-san.cnf" "$backup/kube-apiserver.yaml" "$k/lifeboat-quarantine/kept.yaml" "$k/audit/state.bin"; }
  before=$(kept)
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qxF "    server: https://$NEW:8443/audit" "$k/audit/webhook.yaml"
  grep -qxF "    url: https://$NEW:9443/dex" "$k/authn/config.yaml"
  changed=$(json_field changed)
  [[ $changed == *'"/etc/kubernetes/audit/webhook.yaml"'* ]]
  [[ $changed == *'"/etc/kubernetes/authn/config.yaml"'* ]]
  [ "$(kept)" = "$before" ]
  [[ $changed != *'/etc/kubernetes/pki/apiserver-san.cnf'* && $changed != *'/etc/kubernetes/tmp/'* ]]
  [[ $changed != *'lifeboat-quarantine/kept.yaml'* && $changed != *'state.bin'* ]]
  grep -qF -- "--advertise-address=$NEW" "$k/manifests/kube-apiserver.yaml"
}

# A Deployment on a worker (it tolerates no taint) whose pods read the
# apiserver's address from a ConfigMap (env valueFrom configMapKeyRef).
web_deployment() {
  mkdir -p "$FIXTURE/objects"
  printf 'apiVersion: v1\ndata:\n  API_SERVER: https://%s:6443\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: default\n' \
    "$OLD" >"$FIXTURE/objects/configmaps_default_web-config"
  cat >"$FIXTURE/objects/deployments_default_web" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - env:
        - name: API_SERVER
          valueFrom:
            configMapKeyRef:
              key: API_SERVER
              name: web-config
        image: registry.example/web:v1
        name: web
YAML
}

@test "Deployments whose pods read a changed ConfigMap (envFrom, configMapKeyRef) are rolled out again" {
  web_deployment
  relaunched --cni tigera
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  changed=$(json_field changed "$RESULT")
  [[ $changed == *'"configmap default/web-config"'* ]]
  [[ $changed == *'"deployment tigera-operator/tigera-operator: rollout restarted"'* ]]
  [[ $changed == *'"deployment default/web: rollout restarted"'* ]]
  cluster_object /registry/deployments/default/web | grep -qF "kubectl.kubernetes.io/restartedAt:"
  # The operator runs on this node: its new pod reads the new address.
  grep -qF "deployment-controller: replacing the pod of tigera-operator/deployment/tigera-operator" "$FAKE_LOG"
  container_view tigera-operator | grep -qF "KUBERNETES_SERVICE_HOST: $NEW"
}

@test "quarantine: a Deployment's containers on this node are restarted through the CRI, one without a pod here is a warning" {
  web_deployment
  workers 2
  relaunched --cni tigera
  echo arn:aws:iam::123456789012:instance-profile/lifeboat-drill >"$FAKE_NODE/host/instance-profile"
  node_boot --fence "$OLD" --vpc 10.0.0.0/16
  run repair --quarantine --timeout 120
  assert_repaired
  run ! grep -q "rollout restart" "$FAKE_LOG"
  [[ $(json_field changed "$RESULT") == *'"deployment tigera-operator/tigera-operator: containers restarted through the CRI"'* ]]
  container_view tigera-operator | grep -qF "KUBERNETES_SERVICE_HOST: $NEW"
  [[ $(json_field warnings "$RESULT") == *"deployment default/web reads a ConfigMap that now names $NEW but has no pod on this node: its pods keep the old address until 'kubectl -n default rollout restart deployment web' once the controllers run"* ]]
  # A drill's clone: the other nodes are the source cluster's, no command for them.
  run ! grep -q "still reach the apiserver" <<<"$(warnings_of "$RESULT")"
}

# workers N: N more Nodes in the cluster, Ready on addresses of their own.
workers() {
  local i
  mkdir -p "$FIXTURE/objects"
  for i in $(seq 1 "$1"); do
    printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: worker-%s\nstatus:\n  addresses:\n  - address: 10.0.2.%s\n    type: InternalIP\n  conditions:\n  - status: "True"\n    type: Ready\n' \
      "$i" "$i" >"$FIXTURE/objects/minions__worker-$i"
  done
}

warnings_of() { python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])["warnings"]))' "$1"; }

@test "nodes that joined through the old IP are named in one warning, with the command that moves each" {
  workers 12
  relaunched
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  [ "$(json_field result "$RESULT")" = repaired ]
  warning=$(warnings_of "$RESULT" | grep "still reach the apiserver")
  [ "$(wc -l <<<"$warning")" -eq 1 ]
  [[ $warning == "12 other node(s) still reach the apiserver at $OLD: worker-1 worker-10 worker-11 worker-12 worker-2 worker-3 worker-4 worker-5 worker-6 worker-7 and 2 more (kubectl get nodes); on each, as root: sed -i '"* ]]
  [[ $warning == *"' /etc/kubernetes/kubelet.conf && systemctl restart kubelet (and the same on kube-proxy's kubeconfig where it is a file, not kubeadm's ConfigMap)" ]]
  # The command moves a worker's kubelet.conf (as kubeadm join wrote it, the
  # old server) to the new address, and nothing else in it.
  expr=$(sed -n "s/.*sed -i '\([^']*\)' .*/\1/p" <<<"$warning")
  conf=$BATS_TEST_TMPDIR/worker-kubelet.conf
  cp "$FAKE_ROOT$(json_field backup "$RESULT")/kubernetes/kubelet.conf" "$conf"
  sed "s#$OLD#$NEW#" "$conf" >"$conf.expected"
  sed -i "$expr" "$conf"
  grep -qxF "    server: https://$NEW:6443" "$conf"
  cmp "$conf" "$conf.expected"
}

@test "nodes that cannot be listed are a warning too, with the command, not silence" {
  workers 1
  relaunched
  wrap_tool kubectl <<'SH'
for arg; do
  if [[ $arg == nodes ]]; then
    echo 'Error from server (Forbidden): nodes is forbidden: User "kubernetes-admin" cannot list resource "nodes"' >&2
    exit 1
  fi
done
exec "$REAL" "$@"
SH
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  warnings_of "$RESULT" | grep -qxF "cannot list the nodes: those that joined through $OLD still reach it; on each, as root: sed -i 's#https://127\.0\.0\.10:#https://$NEW:#' /etc/kubernetes/kubelet.conf && systemctl restart kubelet (and the same on kube-proxy's kubeconfig where it is a file, not kubeadm's ConfigMap)"
}

@test "on a RHEL-family node kubelet's --node-ip in /etc/sysconfig/kubelet is rewritten and listed" {
  relaunched --node-ip --rpm
  [ ! -e "$FAKE_ROOT/etc/default/kubelet" ]
  grep -qxF "EnvironmentFile=-/etc/sysconfig/kubelet" "$FAKE_ROOT/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
  grep -qxF "KUBELET_EXTRA_ARGS=\"--node-ip=$OLD\"" "$FAKE_ROOT/etc/sysconfig/kubelet"
  node_boot --cloud-init
  run repair --timeout 120
  # Ready on the new IP: kubelet read the rewritten file (the last --node-ip wins).
  assert_repaired
  grep -qxF "KUBELET_EXTRA_ARGS=\"--node-ip=$NEW\"" "$FAKE_ROOT/etc/sysconfig/kubelet"
  run grep -qF "$OLD" "$FAKE_ROOT/etc/sysconfig/kubelet"
  [ "$status" -eq 1 ]
  [[ $(json_field changed "$RESULT") == *'"/etc/sysconfig/kubelet"'* ]]
  [ ! -e "$FAKE_ROOT/etc/default/kubelet" ]
  # The backup keeps the file under its path on the node.
  grep -qxF "KUBELET_EXTRA_ARGS=\"--node-ip=$OLD\"" "$FAKE_ROOT$(json_field backup "$RESULT")/files/etc/sysconfig/kubelet"
}

@test "a DNS controlPlaneEndpoint is reported for the operator to repoint" {
  relaunched --endpoint k8s.example.com
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  [[ $(json_field warnings) == *"controlPlaneEndpoint k8s.example.com is a DNS name: point it at $NEW"* ]]
  grep -qxF "$NEW k8s.example.com" "$FAKE_ROOT/etc/hosts"
  [[ $(json_field changed) == *'"/etc/hosts"'* ]]
  cluster_object /registry/configmaps/kube-system/kubeadm-config | grep -qF "controlPlaneEndpoint: k8s.example.com:6443"
}

@test "certificates that expire within 30 days are warnings after a restore on the same IP" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  cert_days apiserver 12
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
  [[ $(json_field warnings) == *"certificate apiserver expires on "*"(in 1"[12]" days): renew it with 'kubeadm certs renew apiserver'"* ]]
}

@test "a CA that expires within 30 days is a warning on the same IP, naming the rotation kubeadm cannot do" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  cert_days front-proxy-ca 12
  openssl verify -CAfile "$FAKE_ROOT/etc/kubernetes/pki/front-proxy-ca.crt" "$FAKE_ROOT/etc/kubernetes/pki/front-proxy-client.crt"
  end=$(openssl x509 -in "$FAKE_ROOT/etc/kubernetes/pki/front-proxy-ca.crt" -noout -enddate | cut -d= -f2)
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok",'* ]]
  warnings=$(json_field warnings)
  [[ $warnings == *"the front-proxy-ca CA expires on $(date -u -d "$end" +%Y-%m-%d) (in 1"[12]" days): kubeadm cannot renew a CA; rotate it (kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates)"* ]]
  # Not the renewal of a leaf certificate, which does not renew a CA.
  [[ $warnings != *"kubeadm certs renew"* ]]
}

@test "an expired certificate fails before kubelet starts, naming the fix" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  cert_days apiserver-etcd-client -1
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*"kubeadm certs renew apiserver-etcd-client"* ]]
  [ "$(json_field guard)" = held ]
  run on_node systemctl is-active kubelet
  [ "$output" = inactive ]
}

@test "the repair refuses to release kubelet onto an empty etcd data dir, or onto the dir below an unmounted volume" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot --cloud-init
  mv "$FAKE_ROOT/var/lib/etcd/member" "$FAKE_ROOT/var/lib/etcd-member"
  : >"$FAKE_LOG"
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'* ]]
  [ "$(json_field message)" = "etcd's data dir /var/lib/etcd holds no member (no member/snap/db): refusing to release kubelet onto it (etcd would start a new, empty cluster); attach and mount the volume that holds etcd's data, then run the repair again" ]
  [ "$(json_field guard)" = held ]
  run on_node systemctl is-active kubelet
  [ "$output" = inactive ]
  [ ! -e "$FAKE_ROOT/run/lifeboat/released" ]
  [ ! -e "$FAKE_ROOT/var/lib/lifeboat/released-instance" ]
  run ! grep -qE "^systemctl (stop|start)" "$FAKE_LOG"
  # etcd's data on a data volume whose mount failed: what the dir shows is
  # the root's, whatever it holds.
  mv "$FAKE_ROOT/var/lib/etcd-member" "$FAKE_ROOT/var/lib/etcd/member"
  etcd_volume vol-0d0d0d0d0d0d00003
  node_volumes vol-0a1b2c3d4e5f60001 vol-0d0d0d0d0d0d00003
  echo /var/lib/etcd >"$FAKE_NODE/host/mount-fails"
  node_boot --cloud-init
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(json_field message) == "/var/lib/etcd is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0d0d0d0d0d0d00003): refusing to release kubelet onto it"* ]]
  [ "$(json_field guard)" = held ]
  # Mounted, the repair releases it.
  rm "$FAKE_NODE/host/mount-fails"
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field guard)" = released ]
}

@test "SSM runs it from stdin: bash -s -- ARGS" {
  relaunched
  node_boot
  run on_node bash -s -- --dry-run <"$SCRIPT"
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"dry-run",'* ]]
}

@test "no apiserver manifest: not a control plane, failed at detect" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  rm "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  run repair
  [ "$status" -eq 10 ]
  [[ $(last_json) == '{"result":"failed","step":"detect",'*"not a kubeadm control plane"* ]]
}

@test "an unknown argument or a bad --timeout is a usage error" {
  run repair --force
  [ "$status" -eq 2 ]
  [[ $(last_json) == '{"result":"failed",'*"unknown argument '--force'"* ]]
  run repair --timeout soon
  [ "$status" -eq 2 ]
}

@test "the stand-in kubeadm reuses an existing certificate signed by the CA whatever its SANs, as kubeadm does" {
  # kubernetes/kubernetes cmd/kubeadm/app/cmd/phases/init/certs.go, runCertPhase.
  make_fixture "$OLD"
  node_host "$NEW" k8s-master
  cat >"$BATS_TEST_TMPDIR/config.yaml" <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
certificatesDir: $FAKE_ROOT/etc/kubernetes/pki
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $NEW
nodeRegistration:
  name: k8s-master
YAML
  before=$(sha256sum "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt")
  run on_node kubeadm init phase certs apiserver --config "$BATS_TEST_TMPDIR/config.yaml"
  [ "$status" -eq 0 ]
  [[ $output == *"[certs] Using existing apiserver certificate and key on disk"* ]]
  [ "$(sha256sum "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt")" = "$before" ]
  run grep -qF "IP Address:$NEW" <(sans "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt")
  [ "$status" -eq 1 ]
  run on_node kubeadm init phase certs etcd-server --config "$BATS_TEST_TMPDIR/config.yaml"
  [ "$status" -eq 0 ]
  [[ $output == *"[certs] Using existing etcd/server certificate and key on disk"* ]]
  # Signed by another CA: refused.
  cp "$FAKE_ROOT/etc/kubernetes/pki/etcd/ca.crt" "$FAKE_ROOT/etc/kubernetes/pki/ca.crt"
  run on_node kubeadm init phase certs apiserver --config "$BATS_TEST_TMPDIR/config.yaml"
  [ "$status" -eq 1 ]
  [[ $output == *"[certs] certificate apiserver not signed by CA certificate ca"* ]]
  run on_node kubeadm init phase certs etcd-server --apiserver-advertise-address "$NEW" --config "$BATS_TEST_TMPDIR/config.yaml"
  [ "$status" -eq 1 ]
}

# kubeadm_config FILE SERVICE_SUBNET ADVERTISE: a configuration for the
# certificate phases in the fixture's PKI.
kubeadm_config() {
  cat >"$1" <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
certificatesDir: $FAKE_ROOT/etc/kubernetes/pki
networking:
  serviceSubnet: $2
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $3
nodeRegistration:
  name: k8s-master
YAML
}

@test "the stand-in kubeadm takes --dry-run with --config, writing to a dry-run directory that holds no CA" {
  # kubernetes/kubernetes cmd/kubeadm/app/apis/kubeadm/validation/validation.go
  # (isAllowedFlag), cmd/init.go (CertificateWriteDir), cmd/phases/init/certs.go.
  make_fixture "$OLD"
  node_host "$NEW" k8s-master
  config=$BATS_TEST_TMPDIR/config.yaml
  kubeadm_config "$config" 10.96.0.0/12 "$NEW"
  # An existing certificate signed by the CA: reused, dry run or not.
  run on_node kubeadm init phase certs apiserver --config "$config" --dry-run
  [ "$status" -eq 0 ]
  [[ $output == *"[certs] Using existing apiserver certificate and key on disk"* ]]
  # None: made in the dry run's directory, from the CA found there, which
  # only the CA phases copy in.
  rm "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt" "$FAKE_ROOT/etc/kubernetes/pki/apiserver.key"
  run on_node kubeadm init phase certs apiserver --dry-run=true --config "$config"
  [ "$status" -eq 1 ]
  [[ $output == "error execution phase certs/apiserver: couldn't load CA certificate ca: couldn't load ca certificate authority from $FAKE_ROOT/etc/kubernetes/tmp/kubeadm-init-dryrun"* ]]
  [ ! -e "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt" ]
  [ "$(find "$FAKE_ROOT/etc/kubernetes/tmp" -maxdepth 1 -name 'kubeadm-init-dryrun*' | wc -l)" -eq 2 ]
  # Flags that are not allowed with --config still are not.
  run on_node kubeadm init phase certs apiserver --dry-run --apiserver-advertise-address "$NEW" --config "$config"
  [ "$status" -eq 1 ]
  [ "$output" = "can not mix '--config' with arguments [apiserver-advertise-address]" ]
  run on_node kubeadm init phase certs apiserver --dry-run=maybe --config "$config"
  [ "$status" -eq 1 ]
}

@test "the stand-in kubeadm replaces an unspecified advertise address by the host's and refuses a loopback one, as kubeadm does" {
  # cmd/kubeadm/app/util/config/initconfiguration.go SetAPIEndpointDynamicDefaults,
  # ChooseAPIServerBindAddress; apimachinery util/net ChooseBindAddressForInterface.
  make_fixture "$OLD"
  node_host "$NEW" k8s-master
  config=$BATS_TEST_TMPDIR/config.yaml
  pki=$FAKE_ROOT/etc/kubernetes/pki
  rm "$pki/apiserver.crt" "$pki/apiserver.key"
  kubeadm_config "$config" 10.96.0.0/12 0.0.0.0
  run on_node kubeadm init phase certs apiserver --config "$config"
  [ "$status" -eq 0 ]
  sans "$pki/apiserver.crt" | grep -qF "IP Address:$NEW"
  run grep -qF "IP Address:0.0.0.0" <(sans "$pki/apiserver.crt")
  [ "$status" -eq 1 ]
  for address in 127.0.0.1 ::1; do
    kubeadm_config "$config" 10.96.0.0/12 "$address"
    run on_node kubeadm config validate --config "$config"
    [ "$status" -eq 1 ]
    [ "$output" = "unable to select an IP from lo network interface" ]
  done
  kubeadm_config "$config" 10.96.0.0/12 node.example.com
  run on_node kubeadm config validate --config "$config"
  [ "$status" -eq 1 ]
  [[ $output == *'couldn'\''t use "node.example.com" as "apiserver-advertise-address", must be ipv4 or ipv6 address'* ]]
}

@test "the stand-in kubeadm takes a dual-stack service subnet, and refuses what kubeadm's validation refuses" {
  # cmd/kubeadm/app/apis/kubeadm/validation/validation.go ValidateIPNetFromString,
  # ValidateServiceSubnetSize; constants.GetKubernetesServiceCIDR.
  make_fixture "$OLD"
  node_host "$NEW" k8s-master
  config=$BATS_TEST_TMPDIR/config.yaml
  for subnet in 10.96.0.0/12,fd00::/108 fd00::/108,10.96.0.0/12 fd00:10:96::/112; do
    kubeadm_config "$config" "$subnet" "$NEW"
    run on_node kubeadm config validate --config "$config"
    [ "$status" -eq 0 ]
  done
  for case in "10.96.0.0/12,10.97.0.0/16:expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking" \
    "10.96.0.0/12,fd00::/108,10.97.0.0/16:expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking" \
    "fd00::/64:specified service subnet is too large; for 128-bit addresses, the mask must be >= 108" \
    "10.96.0.0/30:subnet with 4 address(es) is too small, the minimum is 10" "10.96.0.0/12,:couldn't parse subnet"; do
    subnet=${case%%:[a-z]*} message=${case#"$subnet":}
    kubeadm_config "$config" "$subnet" "$NEW"
    run on_node kubeadm config validate --config "$config"
    [ "$status" -eq 1 ]
    [[ $output == *"networking.serviceSubnet: Invalid value: "*"$message"* ]]
  done
  # The service address among the SANs is the first subnet's (the primary family).
  pki=$FAKE_ROOT/etc/kubernetes/pki
  rm "$pki/apiserver.crt" "$pki/apiserver.key"
  kubeadm_config "$config" fd00::/108,10.96.0.0/12 "$NEW"
  run on_node kubeadm init phase certs apiserver --config "$config"
  [ "$status" -eq 0 ]
  sans "$pki/apiserver.crt" | grep -qF "IP Address:FD00:0:0:0:0:0:0:1"
  run grep -qF "IP Address:10.96.0.1" <(sans "$pki/apiserver.crt")
  [ "$status" -eq 1 ]
}

# The SANs of a certificate, one a line, sorted.
san_list() { sans "$1" | tr ',' '\n' | sed 's/^ *//' | sort -u; }

@test "a dual-stack cluster moves to a new IP with every SAN of its certificates, IPv6 ones included" {
  relaunched --dual-stack
  grep -qF -- "--service-cluster-ip-range=10.96.0.0/12,fd00::/108" "$FAKE_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  grep -qxF "  serviceSubnet: 10.96.0.0/12,fd00::/108" "$FAKE_ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  old=$FAKE_ROOT$(json_field backup "$RESULT")/kubernetes/pki
  for cert in apiserver etcd/server etcd/peer; do
    [ "$(san_list "$FAKE_ROOT/etc/kubernetes/pki/$cert.crt")" = "$(san_list "$old/$cert.crt" | sed "s/^IP Address:$OLD\$/IP Address:$NEW/" | sort -u)" ]
    san_list "$FAKE_ROOT/etc/kubernetes/pki/$cert.crt" | grep -qxF "IP Address:2600:1F18:1234:5600:0:0:0:10"
  done
  san_list "$FAKE_ROOT/etc/kubernetes/pki/apiserver.crt" | grep -qxF "IP Address:FD00:0:0:0:0:0:0:1"
}

@test "the repair stages the old certificates away before kubeadm init phase certs, so kubeadm makes new ones" {
  relaunched
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  staging=$FAKE_ROOT/var/lib/lifeboat/pki-new
  for base in apiserver etcd/server etcd/peer; do
    grep -qxF "kubeadm: generated $staging/$base.crt" "$FAKE_LOG"
  done
  run ! grep -q "^kubeadm: reused " "$FAKE_LOG"
  [ ! -e "$staging" ]
}

@test "crictl stop without --timeout kills at once (SIGKILL), with --timeout it sends SIGTERM first" {
  # kubernetes-sigs/cri-tools cmd/crictl/container.go (stop: --timeout has no
  # default, 0) and containerd internal/cri/server/container_stop.go.
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot
  on_node systemctl stop kubelet
  id=$(running_containers etcd)
  [ -n "$id" ]
  run on_node crictl stop --timeout 10 "$id"
  [ "$status" -eq 0 ]
  grep -qxF "containerd: SIGTERM to etcd ($id)" "$FAKE_LOG"
  run ! grep -qF "containerd: SIGKILL to etcd ($id)" "$FAKE_LOG"
  # kubelet starts a new etcd container; without --timeout it is killed.
  on_node systemctl start kubelet
  for _ in $(seq 1 50); do
    id=$(running_containers etcd)
    [ -z "$id" ] || break
    sleep 0.2
  done
  on_node systemctl stop kubelet
  [ -n "$id" ]
  run on_node crictl stop "$id"
  [ "$status" -eq 0 ]
  grep -qxF "containerd: SIGKILL to etcd ($id)" "$FAKE_LOG"
  run ! grep -qF "containerd: SIGTERM to etcd ($id)" "$FAKE_LOG"
}

@test "the repair stops the control plane with a timeout: etcd gets SIGTERM first and shuts down cleanly" {
  make_fixture "$OLD"
  node_host "$OLD" k8s-master
  node_boot
  # The node runs, etcd is live, when its address changes under it.
  until test_etcdctl 127.0.0.1 endpoint health >/dev/null 2>&1; do sleep 0.2; done
  id=$(running_containers etcd)
  [ -n "$id" ]
  node_host "$NEW" ip-127-0-0-77
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qE "^crictl stop --timeout [1-9][0-9]* " "$FAKE_LOG"
  grep -qxF "containerd: SIGTERM to etcd ($id)" "$FAKE_LOG"
  run ! grep -qF "containerd: SIGKILL to etcd ($id)" "$FAKE_LOG"
}

@test "the SANs carry over with an openssl without x509 -ext (OpenSSL 1.0.2)" {
  relaunched
  # OpenSSL 1.0.2 (Amazon Linux 2) has no -ext option.
  wrap_tool openssl <<'SH'
for arg; do
  if [[ $arg == -ext ]]; then
    echo "unknown option -ext" >&2
    exit 1
  fi
done
exec "$REAL" "$@"
SH
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
}

@test "a certificate without SANs fails before anything is stopped: its new one would lose them" {
  relaunched
  # An etcd peer certificate without SANs.
  pki=$FAKE_ROOT/etc/kubernetes/pki
  openssl x509 -in "$pki/etcd/peer.crt" -x509toreq -signkey "$pki/etcd/peer.key" -out "$BATS_TEST_TMPDIR/peer.csr" 2>/dev/null
  openssl x509 -req -in "$BATS_TEST_TMPDIR/peer.csr" -CA "$pki/etcd/ca.crt" -CAkey "$pki/etcd/ca.key" -set_serial 0x1234 \
    -days 365 -out "$pki/etcd/peer.crt" 2>/dev/null
  node_boot --cloud-init
  : >"$FAKE_LOG"
  before=$(tree_sum)
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(last_json) == '{"result":"failed","step":"preflight",'*'"message":"no subject alternative names read from /etc/kubernetes/pki/etcd/peer.crt (openssl x509 -text): its new certificate would lose them"}' ]]
  run ! grep -qE "^systemctl stop|^crictl stop" "$FAKE_LOG"
  [ "$(tree_sum)" == "$before" ]
}

@test "a repair that waited for the lock detects again: the first one moved the node meanwhile" {
  relaunched
  node_boot --cloud-init
  # The first repair pauses once it holds the lock, before it rewrites anything.
  wrap_tool cp <<'SH'
if [[ $* == */var/lib/lifeboat/backup-* && ! -e $FAKE_NODE/paused ]]; then
  touch "$FAKE_NODE/paused"
  sleep 8
fi
exec "$REAL" "$@"
SH
  (
    node_env
    exec env -i "${NODE_ENV[@]}" "$SCRIPT" --timeout 120
  ) >"$BATS_TEST_TMPDIR/first" 2>&1 3>&- &
  first=$!
  for _ in $(seq 1 300); do [[ -e $FAKE_NODE/paused ]] && break; sleep 0.1; done
  [[ -e $FAKE_NODE/paused ]]
  # The second one reads the manifest while it still names the old IP.
  run repair --timeout 120
  status_first=0
  wait "$first" || status_first=$?
  [ "$status_first" -eq 3 ]
  [[ $output == *"configured for $OLD, running on $NEW"* ]]
  [ "$status" -eq 0 ]
  [[ $(last_json) == '{"result":"ok","step":"verify","old_ip":"'"$NEW"'","new_ip":"'"$NEW"'",'* ]]
  [ "$(grep -c '^kubeadm init phase certs apiserver ' "$FAKE_LOG")" -eq 1 ]
  [ "$(json_field guard)" = released ]
}

@test "kubelet's flags are read from the environment files its unit names: a drop-in's own file, --flag value, single quotes" {
  relaunched
  mkdir -p "$FAKE_ROOT/etc/systemd/system/kubelet.service.d"
  printf '[Service]\nEnvironmentFile=/etc/kubelet.env\n' >"$FAKE_ROOT/etc/systemd/system/kubelet.service.d/20-node-ip.conf"
  printf "KUBELET_EXTRA_ARGS='--node-ip %s'\n" "$OLD" >"$FAKE_ROOT/etc/kubelet.env"
  node_boot --cloud-init
  [ "$(on_node systemctl show -p EnvironmentFiles kubelet)" = "$(printf 'EnvironmentFiles=/var/lib/kubelet/kubeadm-flags.env (ignore_errors=yes)\nEnvironmentFiles=/etc/default/kubelet (ignore_errors=yes)\nEnvironmentFiles=/etc/kubelet.env (ignore_errors=no)')" ]
  run repair --timeout 120
  assert_repaired
  [ "$(cat "$FAKE_ROOT/etc/kubelet.env")" = "KUBELET_EXTRA_ARGS='--node-ip $NEW'" ]
  [[ $(json_field changed "$RESULT") == *'"/etc/kubelet.env"'* ]]
  grep -qF -- "--node-ip $OLD" "$FAKE_ROOT$(json_field backup "$RESULT")/files/etc/kubelet.env"
}

@test "a name pinned as --hostname-override NAME in single quotes is read as kubelet reads it: nothing to change" {
  make_fixture "$OLD"
  node_host "$OLD" ip-127-0-0-10
  printf "KUBELET_KUBEADM_ARGS='--container-runtime-endpoint unix:///var/run/containerd/containerd.sock --hostname-override k8s-master'\n" \
    >"$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  before=$(cat "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env")
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 0 ]
  [ "$(json_field result)" = ok ]
  [ "$(cat "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env")" = "$before" ]
  cluster_object /registry/minions/k8s-master | grep -qF "address: $OLD"
}

@test "when systemctl cannot name kubelet's environment files, kubeadm's and the package's are read (RHEL family)" {
  relaunched --node-ip --rpm
  wrap_tool systemctl <<'BODY'
[[ " $* " == *" EnvironmentFiles "* ]] && { echo "Failed to connect to bus: No such file or directory" >&2; exit 1; }
exec "$REAL" "$@"
BODY
  node_boot --cloud-init
  run repair --timeout 120
  assert_repaired
  grep -qF -- "--node-ip=$NEW" "$FAKE_ROOT/etc/sysconfig/kubelet"
  [[ $(json_field changed "$RESULT") == *'"/etc/sysconfig/kubelet"'* ]]
}

# kubelet_cert_days DAYS: kubelet's rotated client certificate
# (kubelet-client-current.pem, certificate and key) re-signed by the
# cluster CA for DAYS more days (-1: expired yesterday).
kubelet_cert_days() {
  local pki=$FAKE_ROOT/etc/kubernetes/pki pem
  pem=$(readlink -f "$FAKE_ROOT/var/lib/kubelet/pki/kubelet-client-current.pem")
  openssl x509 -in "$pem" -x509toreq -signkey "$pem" -copy_extensions copyall -out "$FIXTURE/kubelet.csr" 2>/dev/null
  openssl x509 -req -in "$FIXTURE/kubelet.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days "$1" -copy_extensions copyall -out "$FIXTURE/kubelet.crt" 2>/dev/null
  { cat "$FIXTURE/kubelet.crt"; openssl pkey -in "$pem"; } >"$FIXTURE/kubelet.pem"
  cat "$FIXTURE/kubelet.pem" >"$pem"
}

@test "kubelet's own client certificate: expired fails before anything is stopped, naming kubeadm's fix; expiring soon is a warning" {
  make_fixture "$OLD" --kubelet-cert file
  node_host "$OLD" k8s-master
  kubelet_cert_days -1
  node_boot --cloud-init
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(json_field message) == "expired certificates: kubelet-client (expired "*"kubeadm kubeconfig user --org system:nodes --client-name system:node:k8s-master"* ]]
  run grep -q '^systemctl stop kubelet' "$FAKE_LOG"
  [ "$status" -eq 1 ]
  kubelet_cert_days 10
  run repair --timeout 60
  [ "$status" -eq 0 ]
  [[ $(json_field warnings) == *"kubelet's client certificate /var/lib/kubelet/pki/kubelet-client-current.pem expires on "*" days): kubelet renews it only while it reaches the apiserver"* ]]
}

@test "a CIS-hardened apiserver (--anonymous-auth=false) on its own --secure-port is repaired and verified there" {
  relaunched
  harden_apiserver 16443
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qE "^kubectl --kubeconfig [^ ]*/admin.conf --server https://$NEW:16443 .*get --raw /readyz" "$FAKE_LOG"
  grep -qF "server: https://$NEW:16443" "$FAKE_ROOT/etc/kubernetes/admin.conf"
  cluster_object /registry/minions/k8s-master | grep -qF "address: $NEW"
}

@test "a dual-stack node (--node-ip IPv4,IPv6) is verified on its IPv4 among the Node's InternalIPs" {
  relaunched --node-ip
  sed -i "s/--node-ip=$OLD/--node-ip=$OLD,fd00::10/" "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env" "$FAKE_ROOT/etc/default/kubelet"
  echo fd00::10 >"$FAKE_NODE/host/ipv6"
  node_boot --cloud-init
  run repair --timeout 120
  [ "$status" -eq 3 ]
  grep -qF -- "--node-ip=$NEW,fd00::10" "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  [ "$(on_node kubectl --kubeconfig "$FAKE_ROOT/etc/kubernetes/admin.conf" --server "https://$NEW:6443" get node k8s-master \
    -o 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}')" = "$NEW fd00::10" ]
}

# kubelet with --cloud-provider=external, and the cloud controller manager
# as a static pod.
external_cloud_provider() {
  sed -i 's/^KUBELET_KUBEADM_ARGS="/&--cloud-provider=external /' "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  if [[ ${1:-} == --ccm ]]; then
    sed -e 's/kube-controller-manager/cloud-controller-manager/g' -e 's/controller-manager\.conf/cloud-controller-manager.conf/g' \
      "$FAKE_ROOT/etc/kubernetes/manifests/kube-controller-manager.yaml" >"$FAKE_ROOT/etc/kubernetes/manifests/cloud-controller-manager.yaml"
  fi
}

@test "external cloud provider on a drill: the cloud controller manager is held, the repair patches the Node's address" {
  relaunched
  external_cloud_provider --ccm
  echo arn:aws:iam::123456789012:instance-profile/lifeboat-drill >"$FAKE_NODE/host/instance-profile"
  node_boot --fence "$OLD" --vpc 10.0.0.0/16
  run repair --quarantine --timeout 120
  [ "$status" -eq 3 ]
  [ -f "$FAKE_ROOT/etc/kubernetes/lifeboat-quarantine/cloud-controller-manager.yaml" ]
  grep -qE "^kubectl .* patch node k8s-master --subresource=status --type=json -p .*\"op\":\"test\",\"path\":\"/status/addresses/0/address\",\"value\":\"$OLD\"" "$FAKE_LOG"
  cluster_object /registry/minions/k8s-master | grep -qF "address: $NEW"
  [[ $(json_field warnings) == *"--cloud-provider=external and the drill holds the cloud controller manager"* ]]
}

@test "external cloud provider in production: the repair waits for the cloud controller manager, and says so when it does not come" {
  relaunched
  external_cloud_provider
  node_boot --cloud-init
  run repair --timeout 75
  [ "$status" -eq 23 ]
  [ "$(json_field step)" = verify ]
  [[ $(json_field message) == "node k8s-master is not Ready on $NEW (Ready=True, InternalIP=$OLD); kubelet runs with --cloud-provider=external, so only the cloud controller manager updates the Node's addresses"*"check that it runs" ]]
  # kubelet never moved the address itself (pkg/kubelet/nodestatus/setters.go).
  cluster_object /registry/minions/k8s-master | grep -qF "address: $OLD"
  external_cloud_provider --ccm
  sed -i 's/--cloud-provider=external --cloud-provider=external/--cloud-provider=external/' "$FAKE_ROOT/var/lib/kubelet/kubeadm-flags.env"
  run repair --timeout 120
  [ "$status" -eq 3 ]
  cluster_object /registry/minions/k8s-master | grep -qF "address: $NEW"
  grep -qF "cloud-node-controller: node k8s-master addresses set to $NEW" "$FAKE_LOG"
}

@test "a data volume lifeboat attached but not mounted where fstab says fails before anything is stopped" {
  relaunched
  etcd_volume vol-0d0d0d0d0d0d00003
  etcd_volume vol-0d0d0d0d0d0d00004
  sed -i '$s#/var/lib/etcd#/var/lib/data#' "$FAKE_ROOT/etc/fstab"
  node_volumes vol-0a1b2c3d4e5f60001 vol-0d0d0d0d0d0d00003 vol-0d0d0d0d0d0d00004
  echo /var/lib/data >"$FAKE_NODE/host/mount-fails"
  node_boot --root-volume vol-0a1b2c3d4e5f60001 --ip "$NEW" --data vol-0d0d0d0d0d0d00003=/dev/sdf --data vol-0d0d0d0d0d0d00004=/dev/sdg
  run repair --timeout 60
  [ "$status" -eq 11 ]
  [[ $(json_field message) == "/var/lib/data is not mounted (fstab: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0d0d0d0d0d0d00004, data volume vol-0d0d0d0d0d0d00004): "* ]]
  run grep -q '^systemctl stop kubelet' "$FAKE_LOG"
  [ "$status" -eq 1 ]
  # Mounted at the next boot: repaired.
  rm "$FAKE_NODE/host/mount-fails"
  node_boot --root-volume vol-0a1b2c3d4e5f60001 --ip "$NEW" --data vol-0d0d0d0d0d0d00003=/dev/sdf --data vol-0d0d0d0d0d0d00004=/dev/sdg
  run repair --timeout 120
  [ "$status" -eq 3 ]
}
