#!/usr/bin/env bash
# lifeboat-repair: brings a restored kubeadm control plane back healthy,
# whatever its private IP.
#
# Sent by interruption-handler over SSM Run Command (AWS-RunShellScript), or
# run by hand: lifeboat-repair.sh [--dry-run] [--quarantine] [--root DIR]
#
# Same IP as before (the normal case: lifeboat keeps the interface): verify
# kubelet, the apiserver's /readyz and etcd, and change nothing.
# Another IP: back up /etc/kubernetes and /var/lib/etcd, stop kubelet and the
# static pods, replace the old IP in the manifests and kubeconfigs, regenerate
# the apiserver and etcd certificates with kubeadm from the cluster's own
# ClusterConfiguration, start kubelet, move etcd's peer URL, wait for /readyz,
# fix the kube-proxy and cluster-info ConfigMaps, restart kube-proxy.
# The node name never changes.
#
# Idempotent: a second run, or a run after a partial one, converges. The last
# line printed is the result as JSON. Exit codes:
#   0  nothing to do (healthy on its IP)     3  repaired
#   2  usage                                 10+N  failed at step N (see STEPS)
#
# --quarantine (restore drills): the controller-manager and any
# cloud-controller-manager manifests are moved aside before kubelet starts, so
# a clone cannot act on the cloud or on the real cluster.
#
# systemctl, crictl, kubeadm, kubectl, etcdctl and curl are called through
# PATH; LIFEBOAT_ROOT (or --root) prefixes every path, so tests run the whole
# script against a fixture tree.
set -euo pipefail

STEPS=(detect backup stop quarantine rewrite certificates start etcd ready configmaps kube-proxy verify)
EXIT_NOTHING_TO_DO=0
EXIT_USAGE=2
EXIT_REPAIRED=3

ROOT=${LIFEBOAT_ROOT:-}
IMDS=${LIFEBOAT_IMDS:-http://169.254.169.254}
WAIT_SECONDS=${LIFEBOAT_WAIT_SECONDS:-300}
DRY_RUN=false
QUARANTINE=false
STEP=detect
OLD_IP=""
NEW_IP=""
BACKUP_DIR=""

log() { printf '%s lifeboat-repair [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >&2; }

json_escape() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "${s//$'\n'/ }"; }

# The result goes to the original stdout (fd 7), even from inside a redirect.
exec 7>&1
result() { # result <result> [message]
  printf '{"result":"%s","step":"%s","old_ip":"%s","new_ip":"%s","backup":"%s","quarantine":%s,"message":"%s"}\n' \
    "$1" "$STEP" "$OLD_IP" "$NEW_IP" "$BACKUP_DIR" "$QUARANTINE" "$(json_escape "${2:-}")" >&7
}

step_code() {
  local i
  for i in "${!STEPS[@]}"; do
    if [[ ${STEPS[$i]} == "$1" ]]; then echo $((10 + i)); return; fi
  done
  echo 99
}

fail() {
  log "FAILED: $*"
  result failed "$*"
  exit "$(step_code "$STEP")"
}

k8s() { echo "$ROOT/etc/kubernetes"; }
state_file() { echo "$ROOT/var/lib/lifeboat/repair-state"; }

# The node's private IP, from IMDSv2.
new_ip() {
  local token
  token=$(curl -sf -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/local-ipv4"
}

# The IP the control plane was configured with, from the apiserver manifest.
manifest_ip() {
  local manifest
  manifest="$(k8s)/manifests/kube-apiserver.yaml"
  [[ -f $manifest ]] || return 1
  sed -n 's/.*--advertise-address=\([0-9.]*\).*/\1/p' "$manifest" | head -n 1
}

valid_ip() { [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; }

# Replaces OLD_IP by NEW_IP as a whole address (not inside 10.0.1.100 when
# the old one is 10.0.1.10), dots taken literally.
replace_ip() { # replace_ip FILE...
  local old_re=${OLD_IP//./\\.}
  sed -E -i ":a; s/(^|[^0-9.])${old_re}([^0-9.]|$)/\\1${NEW_IP}\\2/; ta" "$@"
}

# Files under /etc/kubernetes that name the node's IP: manifests, kubeconfigs,
# kubeadm configuration (certificates are regenerated, not edited).
ip_files() {
  local dir
  dir=$(k8s)
  find "$dir/manifests" "$dir" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.conf' -o -name '*.yml' \) 2>/dev/null
  find "$dir/lifeboat" -maxdepth 1 -type f -name '*.yaml' 2>/dev/null || true
}

wait_ready() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until curl -ksf --max-time 5 "https://$1:6443/readyz" >/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 5
  done
}

etcd_flags() {
  local pki
  pki="$(k8s)/pki"
  ETCD_ARGS=(--endpoints "${LIFEBOAT_ETCD_ENDPOINTS:-https://127.0.0.1:2379}")
  if [[ -f $pki/etcd/ca.crt && -z ${LIFEBOAT_ETCD_ENDPOINTS:-} ]]; then
    ETCD_ARGS+=(--cacert "$pki/etcd/ca.crt" --cert "$pki/apiserver-etcd-client.crt" --key "$pki/apiserver-etcd-client.key")
  fi
}

# Moves this member's peer URL from the old IP to the new one. etcd keeps
# the peer URL in its own membership data: the manifest's flags do not
# change it once the member exists.
update_etcd_member() { # update_etcd_member OLD NEW
  local old=$1 new=$2 line id urls
  etcd_flags
  line=$(etcdctl "${ETCD_ARGS[@]}" member list | grep -F "://$old:" | head -n 1 || true)
  if [[ -z $line ]]; then
    if etcdctl "${ETCD_ARGS[@]}" member list | grep -qF "://$new:"; then
      log "etcd member already at $new"
      return 0
    fi
    return 1
  fi
  # "<id>, started, <name>, <peer URLs>, <client URLs>, <is learner>"
  id=${line%%,*}
  urls=$(awk -F', ' '{print $4}' <<<"$line")
  urls=${urls//:\/\/$old:/:\/\/$new:}
  log "etcd member $id: peer URLs now $urls"
  etcdctl "${ETCD_ARGS[@]}" member update "$id" --peer-urls="$urls" >/dev/null
}

etcd_healthy() {
  etcd_flags
  etcdctl "${ETCD_ARGS[@]}" endpoint health >/dev/null 2>&1
}

# The cluster's ClusterConfiguration, as kubeadm stored it in the
# kubeadm-config ConfigMap; cached on disk while the cluster is healthy,
# because with a new IP the apiserver cannot be asked.
cluster_configuration() {
  local cache
  cache="$(k8s)/lifeboat/cluster-configuration.yaml"
  if [[ -s $cache ]]; then
    cat "$cache"
  elif [[ -s "$(k8s)/kubeadm-config.yaml" ]]; then
    awk 'BEGIN{RS="\n---\n"} /kind: ClusterConfiguration/' "$(k8s)/kubeadm-config.yaml"
  else
    kubectl --kubeconfig "$(k8s)/admin.conf" --request-timeout=10s -n kube-system get configmap kubeadm-config \
      -o 'jsonpath={.data.ClusterConfiguration}'
  fi
}

save_cluster_configuration() {
  local cache config
  cache="$(k8s)/lifeboat/cluster-configuration.yaml"
  if config=$(kubectl --kubeconfig "$(k8s)/admin.conf" --request-timeout=10s -n kube-system get configmap kubeadm-config \
    -o 'jsonpath={.data.ClusterConfiguration}' 2>/dev/null) && [[ -n $config ]]; then
    mkdir -p "$(dirname "$cache")"
    printf '%s\n' "$config" >"$cache"
  fi
}

node_name() {
  local conf name
  conf="$(k8s)/kubelet.conf"
  name=$(sed -n 's/.*user: system:node:\(.*\)$/\1/p' "$conf" 2>/dev/null | head -n 1)
  echo "${name:-$(hostname)}"
}

# A kubeadm configuration for `init phase certs`: the stored
# ClusterConfiguration (same apiVersion) with certificatesDir under ROOT,
# plus an InitConfiguration advertising the new IP under the same node name.
kubeadm_config() {
  local cluster api_version
  cluster=$(cluster_configuration) || fail "cannot read the cluster's ClusterConfiguration"
  [[ -n $cluster ]] || fail "the cluster's ClusterConfiguration is empty"
  api_version=$(sed -n 's/^apiVersion: *//p' <<<"$cluster" | head -n 1)
  [[ $api_version == kubeadm.k8s.io/* ]] || fail "unexpected ClusterConfiguration apiVersion '$api_version'"
  cluster=$(sed -E '/^certificatesDir:/d' <<<"$cluster")
  printf '%s\ncertificatesDir: %s\n' "$cluster" "$(k8s)/pki"
  printf -- '---\napiVersion: %s\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: %s\n  bindPort: 6443\nnodeRegistration:\n  name: %s\n' \
    "$api_version" "$NEW_IP" "$(node_name)"
}

verify() {
  STEP=verify
  [[ $(systemctl is-active kubelet || true) == active ]] || fail "kubelet is not active"
  wait_ready "$NEW_IP" || fail "the apiserver is not ready at https://$NEW_IP:6443 after ${WAIT_SECONDS}s"
  etcd_healthy || fail "etcd is not healthy"
}

repair() {
  local pki config_file
  mkdir -p "$(dirname "$(state_file)")"
  printf 'old_ip=%s\nnew_ip=%s\n' "$OLD_IP" "$NEW_IP" >"$(state_file)"

  STEP=backup
  BACKUP_DIR="$ROOT/var/lib/lifeboat/backup-$(date -u +%Y%m%dT%H%M%SZ)-$OLD_IP"
  if [[ -d $BACKUP_DIR ]]; then
    BACKUP_DIR="$BACKUP_DIR-$$"
  fi
  mkdir -p "$BACKUP_DIR"
  cp -a "$(k8s)" "$BACKUP_DIR/kubernetes"
  if [[ -d $ROOT/var/lib/etcd ]]; then cp -a "$ROOT/var/lib/etcd" "$BACKUP_DIR/etcd"; fi
  log "backed up to $BACKUP_DIR"

  STEP=stop
  systemctl stop kubelet || fail "cannot stop kubelet"
  local ids
  ids=$(crictl ps -q --name 'kube-apiserver|etcd|kube-controller-manager|kube-scheduler|cloud-controller-manager' || true)
  if [[ -n $ids ]]; then
    # shellcheck disable=SC2086 # one id per word
    crictl stop $ids >/dev/null || fail "cannot stop the static pods"
  fi
  log "kubelet and the control-plane containers are stopped"

  quarantine

  STEP=rewrite
  mapfile -t files < <(ip_files)
  if ((${#files[@]})); then replace_ip "${files[@]}"; fi
  log "replaced $OLD_IP by $NEW_IP in ${#files[@]} files"

  STEP=certificates
  pki="$(k8s)/pki"
  config_file="$ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  kubeadm_config >"$config_file"
  rm -f "$pki/apiserver.crt" "$pki/apiserver.key" "$pki/etcd/server.crt" "$pki/etcd/server.key" \
    "$pki/etcd/peer.crt" "$pki/etcd/peer.key"
  local phase
  for phase in apiserver etcd-server etcd-peer; do
    kubeadm init phase certs "$phase" --config "$config_file" >&2 || fail "kubeadm init phase certs $phase failed"
  done
  log "regenerated the apiserver, etcd server and etcd peer certificates for $NEW_IP"

  STEP=start
  systemctl start kubelet || fail "cannot start kubelet"

  STEP=etcd
  local deadline=$((SECONDS + WAIT_SECONDS))
  until update_etcd_member "$OLD_IP" "$NEW_IP"; do
    ((SECONDS < deadline)) || fail "cannot move the etcd member's peer URL to $NEW_IP"
    sleep 5
  done

  STEP=ready
  wait_ready "$NEW_IP" || fail "the apiserver is not ready at https://$NEW_IP:6443 after ${WAIT_SECONDS}s"

  STEP=configmaps
  local ns_cm
  for ns_cm in kube-system/kube-proxy kube-public/cluster-info; do
    kubectl --kubeconfig "$(k8s)/admin.conf" -n "${ns_cm%/*}" get configmap "${ns_cm#*/}" -o yaml |
      sed -E ":a; s/(^|[^0-9.])${OLD_IP//./\\.}([^0-9.]|$)/\\1${NEW_IP}\\2/; ta" |
      kubectl --kubeconfig "$(k8s)/admin.conf" apply -f - >/dev/null || fail "cannot update ConfigMap $ns_cm"
  done

  STEP=kube-proxy
  kubectl --kubeconfig "$(k8s)/admin.conf" -n kube-system rollout restart daemonset kube-proxy >/dev/null ||
    fail "cannot restart kube-proxy"

  verify
  rm -f "$(state_file)"
}

quarantine() {
  STEP=quarantine
  $QUARANTINE || return 0
  local dir name
  dir="$(k8s)/lifeboat-quarantine"
  mkdir -p "$dir"
  for name in kube-controller-manager.yaml cloud-controller-manager.yaml; do
    if [[ -f "$(k8s)/manifests/$name" ]]; then
      mv "$(k8s)/manifests/$name" "$dir/$name"
      log "quarantined $name"
    fi
  done
}

main() {
  while (($#)); do
    case $1 in
      --dry-run) DRY_RUN=true ;;
      --quarantine) QUARANTINE=true ;;
      --root) ROOT=${2:?--root needs a directory}; shift ;;
      -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
      *) echo "lifeboat-repair: unknown argument '$1'" >&2; result failed "unknown argument $1"; exit $EXIT_USAGE ;;
    esac
    shift
  done

  STEP=detect
  NEW_IP=$(new_ip) || fail "cannot read local-ipv4 from IMDSv2 at $IMDS"
  valid_ip "$NEW_IP" || fail "IMDS gave '$NEW_IP', not an IPv4 address"
  if [[ -f $(state_file) ]]; then
    # An earlier run stopped half way: finish it.
    OLD_IP=$(sed -n 's/^old_ip=//p' "$(state_file)")
    log "resuming the repair from $OLD_IP"
  else
    OLD_IP=$(manifest_ip) || fail "$(k8s)/manifests/kube-apiserver.yaml is missing: not a kubeadm control plane"
  fi
  valid_ip "$OLD_IP" || fail "no --advertise-address in the apiserver manifest"
  log "configured for $OLD_IP, running on $NEW_IP"

  if $DRY_RUN; then
    if [[ $OLD_IP == "$NEW_IP" ]]; then
      result dry-run "same IP: would verify kubelet, /readyz and etcd, and change nothing"
    else
      result dry-run "would back up, stop kubelet, replace $OLD_IP by $NEW_IP in $(ip_files | wc -l) files, regenerate 3 certificates, move the etcd peer URL, update 2 ConfigMaps and restart kube-proxy"
    fi
    exit $EXIT_NOTHING_TO_DO
  fi

  if [[ $OLD_IP == "$NEW_IP" ]]; then
    quarantine
    verify
    save_cluster_configuration
    result ok "healthy on $NEW_IP"
    exit $EXIT_NOTHING_TO_DO
  fi

  repair
  save_cluster_configuration
  result repaired "moved from $OLD_IP to $NEW_IP"
  exit $EXIT_REPAIRED
}

# Run, unless sourced (tests call the functions); `bash -s` reading the script
# from stdin, as SSM runs it, has no BASH_SOURCE.
if [[ ${BASH_SOURCE[0]:-$0} == "$0" ]]; then
  main "$@"
fi
