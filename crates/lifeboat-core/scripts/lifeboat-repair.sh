#!/usr/bin/env bash
# lifeboat-repair: brings a restored kubeadm control plane back healthy,
# whatever its private IP, then releases lifeboat's boot guard.
#
#   lifeboat-repair.sh [--dry-run] [--quarantine] [--from-image] [--timeout SECONDS] [--root DIR]
#   lifeboat-repair.sh --health NODE_NAME [--timeout SECONDS] [--root DIR]
#
# Sent by interruption-handler over SSM Run Command (`bash -s -- ARGS`, the
# script on stdin), or run by hand as root. `--health` (the stack's health
# document, after a drill's repair) changes nothing: it checks, with the
# repair's own verification, that the control plane is healthy on this
# node's IP, retrying until all pass or the budget (default 120 s) is spent:
#   {"result":"ok|failed","step":"health","readyz":bool,"etcd":bool,
#    "node_ready":bool,"mounts":bool,"internal_ip":"...","message":"..."}
# exit 0 healthy, 1 not, 2 usage.
#
# The node needs what a stock kubeadm control plane has: bash, coreutils,
# sed, awk, grep, openssl, curl, hostname, systemctl, crictl, kubeadm and
# kubectl. It does NOT need etcdctl: etcd is reached through the CRI
# (`crictl exec` into the running etcd container, whose image carries
# etcdctl) with the healthcheck-client certificate kubeadm makes for etcd's
# probes.
#
# Steps; a failure at step N exits 10+N and names the step:
#   0 detect        the node's IP (IMDSv2), the IP it was configured with (the
#                   apiserver manifest), its Kubernetes node name, the guard
#                   as this boot recorded it (/run/lifeboat/status)
#   1 preflight     all that follows, checked before anything is touched:
#                   tools (on the same IP, not those only verify uses:
#                   curl, kubectl, crictl; verify fails naming them, after
#                   kubelet started), etcd's data in place (every fstab mount at or
#                   above its data dir mounted, a member in it: never
#                   released onto an empty data dir), every data volume
#                   lifeboat attached mounted where fstab says, certificates
#                   (kubelet's own client certificate too; expired:
#                   failure; expiring within 30 days: warning); on a new IP
#                   also kubeadm, the CAs, disk space for the backup, and the
#                   kubeadm configuration, derived from the node's own
#                   manifests and certificates. A dry run needs every tool,
#                   and on the same IP checks a new IP's needs too, in
#                   "relaunch": ok, or what a move to a new IP would lack
#   2 stop          kubelet, then the control-plane containers, etcd included
#                   (SIGTERM first: crictl stop --timeout)
#   3 backup        /etc/kubernetes, kubelet's flags and etcd's data, copied
#                   while etcd is not running
#   4 quarantine    (--quarantine, restore drills) the controller-manager and
#                   any cloud-controller-manager moved aside
#   5 rewrite       the old IP replaced, as a whole address, in the text
#                   files of /etc/kubernetes (not pki/ or tmp/), /etc/hosts
#                   and kubelet's flags (--node-ip; the environment files
#                   `systemctl show -p EnvironmentFiles kubelet` names)
#   6 certificates  apiserver, etcd-server and etcd-peer certificates made by
#                   `kubeadm init phase certs` for the new IP
#   7 node-name     kubelet pinned to the node's name (--hostname-override)
#                   when the host name differs, before it starts
#   8 release       the boot guard released for this instance (every later
#                   boot of it passes the guard) and kubelet started
#   9 etcd          the etcd member's peer URL moved to the new IP
#  10 ready         the apiserver's /readyz on the new IP and its manifest's
#                   --secure-port, asked with admin.conf's credentials
#  11 cluster       objects naming the old IP rewritten: kubeadm-config,
#                   kube-proxy, cluster-info, CNI ConfigMaps, workloads' env
#  12 restart       DaemonSets and Deployments whose pods read a changed
#                   ConfigMap (only at start): `kubectl rollout restart`, or
#                   with --quarantine (the controllers are held) their
#                   containers on this node through the CRI
#  13 verify        kubelet active, /readyz, etcd healthy, the Node Ready
#                   with the node's IP among its InternalIPs (kubelet with
#                   --cloud-provider=external leaves them to the cloud
#                   controller manager; a drill holds it, so the repair
#                   patches the Node's status itself)
#  14 revision      (--from-image: the state came from an image) after the
#                   backup, before release: etcd's revision bumped, see
#                   bump_etcd_revision
# After preflight a repair takes the node's lock (flock on
# /run/lifeboat/repair.lock): one repair at a time, the next one waits, then
# detects again (and checks again if the node moved meanwhile).
# On the same IP: detect, preflight, quarantine, node-name, (--from-image:
# stop, backup, revision), release, verify.
# Other nodes are not reached: when they joined through the old IP, a
# warning names them and the command to run on each.
# A failure after kubelet was stopped starts it again; a guard that holds
# kubelet stays in place (only a finished repair releases it).
#
# The last line on stdout is the result, one JSON object:
#   {"result": "ok|repaired|failed|dry-run", "step", "old_ip", "new_ip",
#    "node", "backup", "quarantine",
#    "guard": "self-released|released|held|not-confirmed", "guard_reason",
#    "released_at", "kubelet_started_at", "ready_at", "relaunch" (dry runs),
#    "etcd_revision_bump", "isolation" (--quarantine:
#    {"live_unreachable": ["IP:PORT", ...], "instance_profile": ARN}),
#    "changed": [...], "warnings": [...], "message"}
# etcd_revision_bump (--from-image only): how much etcd's revision went up;
# 0 when it could not be done, a warning says why.
# guard: self-released (the guard released kubelet at boot: this boot runs
# on the state lifeboat chose, or this instance was released before),
# released (by this repair, or earlier this boot by a repair or by hand),
# held (kubelet never ran this boot), not-confirmed (no guard this boot,
# systemd did not load it, or kubelet ran although it holds); guard_reason
# says why.
# The node's own clocks, RFC 3339 UTC, each left out when unknown:
# released_at (the guard's record of its release, self-released or
# released), kubelet_started_at (kubelet's ActiveEnterTimestamp, its last
# start this boot), ready_at (the repair's first successful /readyz; when
# kubelet already ran before the repair, the start of the apiserver's
# container, `crictl inspect`'s status.startedAt).
# Exit codes: 0 nothing to do (and dry runs), 3 repaired, 2 usage, 10+N
# failed at step N. `--timeout` is the budget of all the waits together
# (default 480 s); a run still going 30 s after it is stopped, reported as
# failed at its step (SSM's executionTimeout comes 120 s after the budget).
# A repair killed outright (SSM kills the command's process group with
# SIGKILL) leaves kubelet as it was: a watchdog in a session of its own
# starts it again if the repair had stopped it. Idempotent: a state file marks a repair under way; the
# next run finishes it. LIFEBOAT_ROOT (or --root) prefixes every path on the
# node, so tests run it against a fixture tree.
set -Eeuo pipefail

STEPS=(detect preflight stop backup quarantine rewrite certificates node-name release etcd ready cluster restart verify revision)
EXIT_NOTHING_TO_DO=0
EXIT_USAGE=2
EXIT_REPAIRED=3
EXPIRY_WARNING_DAYS=30
CRI_STOP_TIMEOUT=30 # seconds between SIGTERM and SIGKILL (kubelet's default grace period)
OVERRUN=30          # seconds a run may go on past its budget before the watchdog stops it
# Added to etcd's revision after an image fallback: far more writes than a
# cluster makes between an image and its use (etcd's recovery guide uses 1e9).
ETCD_REVISION_BUMP=1000000000

ROOT=${LIFEBOAT_ROOT:-}
IMDS=${LIFEBOAT_IMDS:-http://169.254.169.254}
TIMEOUT=480
HEALTH_TIMEOUT=120 # --health's default budget
TIMEOUT_GIVEN=false
HEALTH=false
DEADLINE=0
DRY_RUN=false
QUARANTINE=false
FROM_IMAGE=false
ETCD_BUMP="" # the result's etcd_revision_bump (--from-image): the bump, 0 when not done
STEP=detect
OLD_IP=""
NEW_IP=""
NODE=""
BACKUP_DIR=""
GUARD=not-confirmed
GUARD_REASON=""
KUBELET_STOPPED=false
WATCHDOG=""
CHANGED=()
WARNINGS=()
KUBEADM_CONFIG=""
RELEASED_AT=""
READY_AT=""
READY_NOTED=false
APISERVER_UP_BEFORE=false # kubelet ran before the repair touched anything
RELAUNCH=""               # a dry run: what a move to a new IP would lack, or ok
CHECKING_RELAUNCH=false   # preflight_new_ip only reports (a dry run on the same IP)
VERIFY_TOOLS=(curl kubectl crictl)
ISOLATION="" # --quarantine: what the clone proved of its isolation (result's "isolation")

log() { printf '%s lifeboat-repair [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$STEP" "$*" >&2; }

json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; printf '"%s"' "${s//$'\n'/ }"; }
json_array() {
  local out="" item
  for item in "$@"; do out+=",$(json_string "$item")"; done
  printf '[%s]' "${out#,}"
}

# The result goes to the original stdout (fd 7), even from inside a redirect.
exec 7>&1
result() { # result RESULT [MESSAGE]
  local times="" started
  started=$(kubelet_started_at)
  [[ -z $RELEASED_AT ]] || times+="\"released_at\":\"$RELEASED_AT\","
  [[ -z $started ]] || times+="\"kubelet_started_at\":\"$started\","
  [[ -z $READY_AT ]] || times+="\"ready_at\":\"$READY_AT\","
  [[ -z $RELAUNCH ]] || times+="\"relaunch\":$(json_string "$RELAUNCH"),"
  [[ -z $ETCD_BUMP ]] || times+="\"etcd_revision_bump\":$ETCD_BUMP,"
  times+=$ISOLATION
  printf '{"result":"%s","step":"%s","old_ip":"%s","new_ip":"%s","node":%s,"backup":%s,"quarantine":%s,"guard":"%s","guard_reason":%s,%s"changed":%s,"warnings":%s,"message":%s}\n' \
    "$1" "$STEP" "$OLD_IP" "$NEW_IP" "$(json_string "$NODE")" "$(json_string "$(node_path "$BACKUP_DIR")")" "$QUARANTINE" "$GUARD" \
    "$(json_string "$GUARD_REASON")" "$times" "$(json_array "${CHANGED[@]}")" "$(json_array "${WARNINGS[@]}")" "$(json_string "${2:-}")" >&7
}

# --- the node's clocks ------------------------------------------------------------

rfc3339() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null; } # a time as date(1) reads it

# kubelet's last start this boot: systemd's ActiveEnterTimestamp, as
# systemctl prints it ("Day YYYY-MM-DD HH:MM:SS TZ"; empty or n/a when
# kubelet never became active this boot).
kubelet_started_at() {
  local entered
  entered=$(systemctl show -p ActiveEnterTimestamp --value kubelet 2>/dev/null) || return 0
  [[ -n $entered && $entered != n/a ]] || return 0
  rfc3339 "$entered" || true
}

# When the apiserver answered ready, noted once: now (the repair's first
# successful /readyz), or, when kubelet ran before the repair and the
# repair has not stopped the control plane, its container's start.
note_ready() {
  local id started o='{' c='}' # no double braces: SSM reads them as a document parameter
  $READY_NOTED && return 0
  READY_NOTED=true
  if $APISERVER_UP_BEFORE; then
    id=$(cri_ids kube-apiserver | head -n 1)
    [[ -n $id ]] || return 0
    started=$(timeout 30 crictl inspect -o go-template --template "$o$o.status.startedAt$c$c" "$id" 2>/dev/null) || return 0
    READY_AT=$(rfc3339 "$started") || READY_AT=""
  else
    READY_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fi
}

step_code() {
  local i
  for i in "${!STEPS[@]}"; do
    if [[ ${STEPS[$i]} == "$1" ]]; then echo $((10 + i)); return; fi
  done
  echo 99
}

fail() {
  trap - ERR
  if $HEALTH; then health_result failed false false false false "" "$*"; fi
  log "FAILED: $*"
  restart_kubelet_after_failure
  result failed "$*"
  exit "$(step_code "$STEP")"
}

# An unexpected failure is reported like the others, from the main shell only.
on_error() {
  if [[ $BASHPID != "$$" ]]; then exit 1; fi
  fail "unexpected failure of '$2' (line $1)"
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR
# An operator's ^C: reported, kubelet started again.
trap 'fail "interrupted by a signal"' HUP INT TERM
trap 'fail "still running ${OVERRUN}s after the --timeout budget of ${TIMEOUT}s: stopped before SSM stops it"' ALRM
trap disarm_watchdog EXIT

# A failure after this run stopped kubelet leaves it started again; under a
# guard that is not released, systemd skips the start and kubelet stays held.
restart_kubelet_after_failure() {
  $KUBELET_STOPPED || return 0
  KUBELET_STOPPED=false
  if timeout 30 systemctl start kubelet >&2; then
    log "kubelet started again after the failure"
  else
    log "could not start kubelet again: start it by hand (systemctl start kubelet)"
  fi
  rm -f "$(kubelet_mark)"
}

# SSM's executionTimeout and a cancel SIGKILL the command's whole process
# group (amazon-ssm-agent agent/executers/executers_unix.go: Setpgid, then
# killProcess: syscall.Kill(-pid, SIGKILL)): no trap runs. The watchdog, in a
# session of its own, outlives that: once the repair is gone, it starts
# kubelet if the mark says the repair stopped it and did not start it again.
# It stops a repair still running OVERRUN seconds after its budget: SIGALRM
# (a trap runs once the command in progress ends), then SIGTERM to that command.
kubelet_mark() { echo "$ROOT/run/lifeboat/repair-stopped-kubelet"; }

watchdog() { # watchdog PID SECONDS MARK
  local state="" alarmed=false child
  while read -r _ _ state _ 2>/dev/null <"/proc/$1/stat" && [[ $state != Z ]]; do
    if ! $alarmed && ((SECONDS >= $2)); then
      kill -ALRM "$1" && alarmed=true
      for child in $(ps -o pid= --ppid "$1"); do ((child == $$)) || kill -TERM "$child" 2>/dev/null || true; done
    fi
    sleep 1
  done
  # Only this repair's mark: another one may hold the lock with kubelet stopped.
  [[ $(cat "$3" 2>/dev/null) == "$1" ]] || exit 0
  timeout 30 systemctl start kubelet && rm -f "$3"
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) lifeboat-repair (pid $1) died with kubelet stopped: started it again" >>"${3%/*}/repair-watchdog.log"
}

# Started before anything is touched; none of the repair's descriptors (the
# result, the lock, SSM's pipes) stay open in it.
arm_watchdog() {
  mkdir -p "$ROOT/run/lifeboat"
  # shellcheck disable=SC2016 # expanded by the watchdog's shell
  setsid bash -c "$(declare -f watchdog)"'; watchdog "$@"' lifeboat-repair-watchdog "$$" "$(($(remaining) + OVERRUN))" \
    "$(kubelet_mark)" </dev/null >/dev/null 2>&1 3>&- 7>&- 9>&- &
  WATCHDOG=$!
}

disarm_watchdog() {
  [[ -n $WATCHDOG ]] || return 0
  kill "$WATCHDOG" 2>/dev/null || true
  wait "$WATCHDOG" 2>/dev/null || true
}

# --- the budget of every wait ---------------------------------------------------

remaining() { local r=$((DEADLINE - SECONDS)); echo $((r > 0 ? r : 0)); }

# wait_for DESCRIPTION COMMAND...: retries COMMAND until it succeeds or the
# budget is spent.
wait_for() {
  local what=$1
  shift
  while true; do
    if "$@"; then return 0; fi
    if (($(remaining) <= 0)); then
      log "gave up waiting for $what: the --timeout budget of ${TIMEOUT}s is spent"
      return 1
    fi
    sleep "$(($(remaining) < 2 ? 1 : 2))"
  done
}

# A command bounded by the budget (at least a few seconds).
bounded() { local t; t=$(remaining); timeout "$((t > 5 ? t : 5))" "$@"; }

# --- the node's files ------------------------------------------------------------------

k8s() { echo "$ROOT/etc/kubernetes"; }
manifest() { echo "$(k8s)/manifests/$1.yaml"; }
manifest_flag() { sed -n "s/^ *- --$2=//p" "$1" 2>/dev/null | head -n 1; }
state_file() { echo "$ROOT/var/lib/lifeboat/repair-state"; }
guard_dropin() { echo "$ROOT/run/systemd/system/kubelet.service.d/50-lifeboat-guard.conf"; }
guard_flag() { echo "$ROOT/run/lifeboat/released"; }
guard_status() { echo "$ROOT/run/lifeboat/status"; }
guard_marker() { echo "$ROOT/var/lib/lifeboat/released-instance"; }
node_path() { echo "${1#"$ROOT"}"; }

valid_ip() { [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; }
ip_regex() { echo "(^|[^0-9.])${1//./\\.}([^0-9.]|$)"; }
names_ip() { grep -IEq "$(ip_regex "$2")" "$1" 2>/dev/null; } # text files only

# Replaces OLD_IP by NEW_IP as a whole address (not inside 10.0.1.100 when
# the old one is 10.0.1.10), dots taken literally.
replace_ip() { sed -E ":a; s/(^|[^0-9.])${OLD_IP//./\\.}([^0-9.]|$)/\\1${NEW_IP}\\2/; ta" "$@"; }

# The node's private IP, from IMDSv2.
imds_ip() {
  local token
  token=$(curl -sf --max-time 5 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/local-ipv4"
}

kubeconfig_field() { sed -n "s/^ *$2: //p" "$1" 2>/dev/null | head -n 1; }

# The PEM of a kubeconfig's client certificate (embedded or a file).
kubeconfig_client_cert() {
  local data file
  data=$(kubeconfig_field "$1" client-certificate-data)
  if [[ -n $data ]]; then
    base64 -d <<<"$data" 2>/dev/null
  else
    file=$(kubeconfig_field "$1" client-certificate)
    [[ -n $file && -f $ROOT$file ]] && cat "$ROOT$file"
  fi
}

# The Kubernetes node name: kubelet.conf's system:node:<name> user, else the
# CN of kubelet's client certificate (kubeadm's kubelet.conf names the user
# default-auth once kubelet rotates its certificate).
kubernetes_node_name() {
  local conf name
  conf="$(k8s)/kubelet.conf"
  [[ -f $conf ]] || return 1
  name=$(grep -o 'system:node:[^ "@]*' "$conf" | head -n 1 || true)
  if [[ -z $name ]]; then
    name=$(kubeconfig_client_cert "$conf" | openssl x509 -noout -subject -nameopt RFC2253 2>/dev/null |
      sed -n 's/.*CN=\(system:node:[^,]*\).*/\1/p')
  fi
  [[ -n $name ]] || return 1
  echo "${name#system:node:}"
}

# kubelet's environment files in systemd's order, as `systemctl show -p
# EnvironmentFiles` prints them ("PATH (ignore_errors=yes|no)" a line:
# src/systemctl/systemctl-show.c); else 10-kubeadm.conf's: kubeadm's flags,
# then the package's file for extra flags (deb or rpm).
kubeadm_flags_file() { echo "$ROOT/var/lib/kubelet/kubeadm-flags.env"; }
kubelet_env_files() {
  local files f
  files=$(systemctl show -p EnvironmentFiles kubelet 2>/dev/null | sed -n 's/^EnvironmentFiles=\(.*\) (ignore_errors=[a-z]*)$/\1/p') || files=""
  [[ -n $files ]] || files=$'/var/lib/kubelet/kubeadm-flags.env\n/etc/default/kubelet\n/etc/sysconfig/kubelet'
  while IFS= read -r f; do echo "$ROOT$f"; done <<<"$files"
}
# A variable as systemd reads an environment file (systemd.exec(5)): the
# last assignment, without its double or single quotes.
env_set() { grep -q "^[[:space:]]*$2=" "$1" 2>/dev/null; }
env_var() {
  sed -n "s/^[[:space:]]*$2=//p" "$1" 2>/dev/null | tail -n 1 | sed -e 's/^"\(.*\)"[[:space:]]*$/\1/' -e "s/^'\\(.*\\)'[[:space:]]*\$/\\1/"
}

# kubelet's flags as its ExecStart= gets them: $KUBELET_KUBEADM_ARGS, then
# $KUBELET_EXTRA_ARGS, each from the last file that sets it.
kubelet_args() {
  local file kubeadm="" extra=""
  for file in $(kubelet_env_files); do
    if env_set "$file" KUBELET_KUBEADM_ARGS; then kubeadm=$(env_var "$file" KUBELET_KUBEADM_ARGS); fi
    if env_set "$file" KUBELET_EXTRA_ARGS; then extra=$(env_var "$file" KUBELET_EXTRA_ARGS); fi
  done
  echo "$kubeadm $extra"
}

# Words of flags with each "--flag value" joined as "--flag=value".
joined_flags() {
  local arg flag=""
  for arg in "$@"; do
    if [[ -n $flag && $arg != -* ]]; then echo "$flag=$arg"; flag=""; continue; fi
    [[ -z $flag ]] || echo "$flag"
    flag=""
    if [[ $arg == --* && $arg != *=* ]]; then flag=$arg; else echo "$arg"; fi
  done
  [[ -z $flag ]] || echo "$flag"
}

# The value of a kubelet flag as kubelet gets it (the last one wins).
kubelet_flag() {
  local arg value=""
  # shellcheck disable=SC2046 # one flag a word
  for arg in $(joined_flags $(kubelet_args)); do
    [[ $arg == --$1=* ]] && value=${arg#--"$1"=}
  done
  echo "$value"
}

# The CRI endpoint kubelet uses (kubeadm writes it to kubelet's flags, or to
# its configuration since NodeLocalCRISocket).
kubelet_runtime_endpoint() {
  local endpoint
  endpoint=$(kubelet_flag container-runtime-endpoint)
  [[ -n $endpoint ]] || endpoint=$(sed -n 's/^containerRuntimeEndpoint: *//p' "$ROOT/var/lib/kubelet/config.yaml" 2>/dev/null | tr -d '"' | head -n 1)
  echo "$endpoint"
}

# crictl talks to kubelet's runtime (its default endpoints are deprecated).
use_kubelet_runtime() {
  if [[ -z ${CONTAINER_RUNTIME_ENDPOINT:-} ]]; then
    CONTAINER_RUNTIME_ENDPOINT=$(kubelet_runtime_endpoint)
    [[ -z $CONTAINER_RUNTIME_ENDPOINT ]] || export CONTAINER_RUNTIME_ENDPOINT
  fi
}

# The SANs of a certificate, one a line, as kubeadm's config takes them:
# from `x509 -text` (OpenSSL 1.0.2, Amazon Linux 2's, has no `x509 -ext`).
cert_sans() {
  openssl x509 -in "$1" -noout -text 2>/dev/null | awk '/X509v3 Subject Alternative Name:/ { getline; print; exit }' |
    tr ',' '\n' | sed -e 's/^ *//' -e 's/^DNS://' -e 's/^IP Address://' -e 's/^0:0:0:0:0:0:0:1$/::1/' | grep . || true
}

# --- the CRI and etcd ---------------------------------------------------------------

cri_ids() { # cri_ids NAME [NAMESPACE]: running containers named exactly NAME
  crictl ps -q --name "^$1\$" --label "io.kubernetes.pod.namespace=${2:-kube-system}" 2>/dev/null || true
}

# etcdctl inside the running etcd container, with kubeadm's healthcheck
# client certificate; paths are the container's (kubeadm mounts the etcd
# certificates directory at the same path).
etcdctl_cri() {
  local id manifest pki endpoint url
  id=$(cri_ids etcd | head -n 1)
  [[ -n $id ]] || return 1
  manifest=$(manifest etcd)
  pki=$(dirname "$(manifest_flag "$manifest" trusted-ca-file)")
  endpoint=""
  for url in $(manifest_flag "$manifest" listen-client-urls | tr ',' ' '); do
    [[ $url == https://127.0.0.1:* ]] && endpoint=$url
  done
  [[ -n $endpoint ]] || endpoint=$(manifest_flag "$manifest" advertise-client-urls | cut -d, -f1)
  timeout 30 crictl exec "$id" etcdctl --endpoints="$endpoint" --cacert="$pki/ca.crt" \
    --cert="$pki/healthcheck-client.crt" --key="$pki/healthcheck-client.key" \
    --dial-timeout=3s --command-timeout=10s "$@"
}

etcd_healthy() { etcdctl_cri endpoint health >/dev/null 2>&1; }
etcd_stopped() { [[ -z $(cri_ids etcd) ]]; }

# --- the apiserver -----------------------------------------------------------------

# The apiserver's URL on IP: its manifest's --secure-port (default 6443).
api_url() { local p; p=$(manifest_flag "$(manifest kube-apiserver)" secure-port); echo "https://$1:${p:-6443}"; }

# /readyz with admin.conf's credentials (--anonymous-auth=false refuses
# anonymous requests), its certificate verified against admin.conf's CA.
readyz() { # readyz IP
  [[ $(kubectl --kubeconfig "$(k8s)/admin.conf" --server "$(api_url "$1")" --request-timeout=5s get --raw /readyz 2>/dev/null) == ok ]] ||
    return 1
  note_ready
}

# kubectl against this node's own apiserver, whatever admin.conf names.
kube() { kubectl --kubeconfig "$(k8s)/admin.conf" --server "$(api_url "$NEW_IP")" --request-timeout=10s "$@"; }

node_status() { # "<Ready> <InternalIP>..." of NODE (dual-stack: two InternalIPs)
  kube get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null
}
node_ready_on_ip() { local s; s=$(node_status) || return 1; [[ ${s%% *} == True && " ${s#* } " == *" $NEW_IP "* ]]; }

# With --cloud-provider=external kubelet keeps the addresses a Node has
# (pkg/kubelet/nodestatus/setters.go, NodeAddress): the cloud controller
# manager sets them. A drill quarantines it, so the repair moves the clone's
# InternalIP itself (a JSON patch testing the old value first).
patch_node_address() {
  local addresses a i=0 ops=""
  addresses=$(kube get node "$NODE" -o 'jsonpath={.status.addresses[*].address}') || return 1
  for a in $addresses; do
    [[ $a != "$OLD_IP" ]] ||
      ops+="{\"op\":\"test\",\"path\":\"/status/addresses/$i/address\",\"value\":\"$OLD_IP\"},{\"op\":\"replace\",\"path\":\"/status/addresses/$i/address\",\"value\":\"$NEW_IP\"},"
    i=$((i + 1))
  done
  [[ -n $ops ]] || return 0
  kube patch node "$NODE" --subresource=status --type=json -p "[${ops%,}]" >/dev/null || return 1
  CHANGED+=("node $NODE: status address $NEW_IP (patched: the cloud controller manager is quarantined)")
  WARNINGS+=("kubelet runs with --cloud-provider=external and the drill holds the cloud controller manager: the repair patched node $NODE's InternalIP to $NEW_IP itself")
}

# --- certificates -------------------------------------------------------------------

# kubeadm-managed certificates: FILE (under /etc/kubernetes) and its name for
# `kubeadm certs renew`; kubeconfigs carry theirs inside.
CERTIFICATES=(
  pki/apiserver.crt:apiserver pki/apiserver-kubelet-client.crt:apiserver-kubelet-client
  pki/apiserver-etcd-client.crt:apiserver-etcd-client pki/front-proxy-client.crt:front-proxy-client
  pki/etcd/server.crt:etcd-server pki/etcd/peer.crt:etcd-peer pki/etcd/healthcheck-client.crt:etcd-healthcheck-client
  admin.conf:admin.conf super-admin.conf:super-admin.conf controller-manager.conf:controller-manager.conf
  scheduler.conf:scheduler.conf pki/ca.crt:ca pki/front-proxy-ca.crt:front-proxy-ca pki/etcd/ca.crt:etcd-ca
)
REGENERATED=(apiserver etcd-server etcd-peer)

# Expired certificates fail (with the fix); those expiring soon are warnings.
# On a new IP the three the repair makes anew do not count. kubelet's own
# client certificate (kubelet rotates it, not kubeadm) counts too.
check_certificates() {
  local entry file name pem end end_s now expired=() days
  now=$(date +%s)
  for entry in "${CERTIFICATES[@]}" -:kubelet-client; do
    file="$(k8s)/${entry%%:*}" name=${entry#*:}
    [[ $name != kubelet-client ]] || file=$ROOT/var/lib/kubelet/pki/kubelet-client-current.pem
    [[ -f $file ]] || continue
    if [[ $file == *.conf ]]; then pem=$(kubeconfig_client_cert "$file") || continue; else pem=$(cat "$file"); fi
    [[ -n $pem ]] || continue
    end=$(openssl x509 -noout -enddate <<<"$pem" 2>/dev/null | sed 's/^notAfter=//') || continue
    end_s=$(date -d "$end" +%s) || continue
    if [[ $OLD_IP != "$NEW_IP" && " ${REGENERATED[*]} " == *" $name "* ]]; then continue; fi
    days=$(((end_s - now) / 86400))
    if ((end_s <= now)); then
      expired+=("$name (expired $(date -u -d "@$end_s" +%Y-%m-%d))")
    elif ((days < EXPIRY_WARNING_DAYS)); then
      if [[ $name == kubelet-client ]]; then
        WARNINGS+=("kubelet's client certificate $(node_path "$file") expires on $(date -u -d "@$end_s" +%Y-%m-%d) (in $days days): kubelet renews it only while it reaches the apiserver")
      elif [[ $name == ca || $name == *-ca ]]; then
        WARNINGS+=("the $name CA expires on $(date -u -d "@$end_s" +%Y-%m-%d) (in $days days): kubeadm cannot renew a CA; rotate it (kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates)")
      else
        WARNINGS+=("certificate $name expires on $(date -u -d "@$end_s" +%Y-%m-%d) (in $days days): renew it with 'kubeadm certs renew $name'")
      fi
    fi
  done
  if ((${#expired[@]})); then
    local names=() fix=""
    local ca=false
    for entry in "${expired[@]}"; do
      name=${entry%% *}
      case $name in
        ca | *-ca) ca=true ;;
        kubelet-client) ;;
        *) names+=("$name") ;;
      esac
    done
    ((${#names[@]} == 0)) || fix="renew them on the node with 'kubeadm certs renew ${names[*]}'"
    ! $ca || fix+="${fix:+; }rotate the expired CA (kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates)"
    [[ " ${expired[*]} " != *" kubelet-client "* ]] ||
      fix+="${fix:+; }give kubelet a new kubelet.conf: on a control plane node 'kubeadm kubeconfig user --org system:nodes --client-name system:node:$NODE', then restart kubelet and point kubelet.conf at the new /var/lib/kubelet/pki/kubelet-client-current.pem (kubeadm's troubleshooting: kubelet client cert rotation fails)"
    fail "expired certificates: ${expired[*]}; $fix, then run the repair again"
  fi
}

# A kubeadm configuration for `init phase certs`, derived from the node's own
# files: the certificates' SANs with the old IP replaced (so
# controlPlaneEndpoint, certSANs, serverCertSANs and peerCertSANs carry
# over), the service subnet and version of the apiserver manifest, the DNS
# domain of kubelet's configuration, the node name, the CRI socket of
# kubelet's flags, the new IP as the advertise address. CERT_DIR receives the
# new certificates.
derive_kubeadm_config() { # derive_kubeadm_config API_VERSION CERT_DIR
  local api=$1 dir=$2 apiserver version subnet domain cri port
  apiserver=$(manifest kube-apiserver)
  version=$(sed -n 's/^ *image: .*kube-apiserver:\(v[0-9][^ ]*\)$/\1/p' "$apiserver" | head -n 1)
  subnet=$(manifest_flag "$apiserver" service-cluster-ip-range)
  port=$(manifest_flag "$apiserver" secure-port)
  domain=$(sed -n 's/^clusterDomain: *//p' "$ROOT/var/lib/kubelet/config.yaml" 2>/dev/null | head -n 1)
  [[ -n $domain ]] || domain=$(cert_sans "$(k8s)/pki/apiserver.crt" | sed -n 's/^kubernetes\.default\.svc\.//p' | head -n 1)
  cri=$(kubelet_runtime_endpoint)
  [[ -n $version && -n $subnet ]] || return 1
  sans() { cert_sans "$1" | replace_ip | sed 's/^/    - /'; }
  cat <<YAML
apiVersion: $api
kind: ClusterConfiguration
kubernetesVersion: $version
certificatesDir: $dir
networking:
  serviceSubnet: $subnet
  dnsDomain: ${domain:-cluster.local}
apiServer:
  certSANs:
$(sans "$(k8s)/pki/apiserver.crt" | sed 's/^  //')
etcd:
  local:
    dataDir: $(manifest_flag "$(manifest etcd)" data-dir)
    serverCertSANs:
$(sans "$(k8s)/pki/etcd/server.crt")
    peerCertSANs:
$(sans "$(k8s)/pki/etcd/peer.crt")
---
apiVersion: $api
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $NEW_IP
  bindPort: ${port:-6443}
nodeRegistration:
  name: $NODE
YAML
  [[ -z $cri ]] || printf '  criSocket: %s\n' "$cri"
}

# --- the boot guard and etcd's data -----------------------------------------------

# This instance's id, as cloud-init recorded it this boot (cloudinit/stages.py,
# _reflect_cur_instance), the same the guard reads.
instance_id() {
  local file
  for file in "$ROOT/run/cloud-init/.instance-id" "$ROOT/var/lib/cloud/data/instance-id"; do
    if [[ -s $file ]]; then head -n 1 "$file"; return 0; fi
  done
  return 1
}

status_field() { sed -n "s/^$1=//p" "$(guard_status)" 2>/dev/null | tail -n 1; }

# The guard as this boot recorded it, confirmed rather than inferred: the
# boothook records whether systemd loaded the drop-in (and whether its
# daemon-reload failed), lifeboat-guard.service what it decided and why.
# "held" only while kubelet never ran this boot.
detect_guard() {
  local entered
  if [[ ! -f $(guard_status) ]]; then
    GUARD=not-confirmed
    GUARD_REASON="no record of lifeboat's boot guard this boot ($(node_path "$(guard_status)")): cloud-init did not run lifeboat's user data"
    return 0
  fi
  GUARD=$(status_field guard) GUARD_REASON=$(status_field reason)
  case $GUARD in
    self-released | released)
      RELEASED_AT=$(status_field at)
      [[ $RELEASED_AT =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || RELEASED_AT=""
      ;;
    not-confirmed) ;;
    held)
      entered=$(systemctl show -p ActiveEnterTimestampMonotonic --value kubelet 2>/dev/null || true)
      if [[ $entered != 0 ]]; then
        GUARD=not-confirmed
        GUARD_REASON="kubelet ran this boot (ActiveEnterTimestampMonotonic=${entered:-unknown}) although the guard holds it: $GUARD_REASON"
      fi
      ;;
    *)
      GUARD=not-confirmed
      GUARD_REASON="the guard recorded '$GUARD' in $(node_path "$(guard_status)")"
      ;;
  esac
}

# Records the repair's release where the guard keeps its decisions.
record_release() {
  local file
  file=$(guard_status)
  RELEASED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  { grep -Ev '^(guard|reason|at)=' "$file" 2>/dev/null || true
    printf 'guard=%s\nreason=%s\nat=%s\n' "$GUARD" "$GUARD_REASON" "$RELEASED_AT"; } >"$file.new"
  mv "$file.new" "$file"
  # And on the console, as the guard's own decisions are: `lifeboat status`
  # reads the last one from the instance's console output.
  if [[ -w $ROOT/dev/console ]]; then
    echo "lifeboat-guard: $GUARD: $GUARD_REASON" >"$ROOT/dev/console" || true
  fi
}

mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' "$ROOT/proc/self/mountinfo" 2>/dev/null; }

# Why etcd's data is not in place (nothing when it is): every fstab mount at
# or above etcd's --data-dir must be mounted (/proc/self/mountinfo), and the
# data dir must hold a member as etcd leaves it (member/snap/db and
# member/wal/*.wal). On an empty data dir kubeadm's manifest makes etcd
# start a new, empty cluster.
etcd_data_missing() {
  local dir spec mp type opts wal
  dir=$(manifest_flag "$(manifest etcd)" data-dir)
  dir=${dir:-/var/lib/etcd}
  if [[ -f $ROOT/etc/fstab ]]; then
    while read -r spec mp type opts _; do
      [[ -n $spec && $spec != \#* && $type != swap && ,$opts, != *,noauto,* ]] || continue
      [[ $mp == / ]] || mp=${mp%/}
      if [[ $dir/ == "$mp"/* ]] && ! mounted "$mp"; then
        echo "$mp is not mounted (fstab: $spec)"
        return 0
      fi
    done <"$ROOT/etc/fstab"
  fi
  if [[ ! -s $ROOT$dir/member/snap/db ]]; then
    echo "etcd's data dir $dir holds no member (no member/snap/db)"
    return 0
  fi
  for wal in "$ROOT$dir"/member/wal/*.wal; do
    [[ -f $wal ]] && return 0
  done
  echo "etcd's data dir $dir holds no member (no member/wal/*.wal)"
}

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

# --- steps ---------------------------------------------------------------------------

detect() {
  STEP=detect
  local manifest
  manifest=$(manifest kube-apiserver)
  NEW_IP=$(imds_ip) || fail "cannot read local-ipv4 from IMDSv2 at $IMDS"
  valid_ip "$NEW_IP" || fail "IMDS gave '$NEW_IP', not an IPv4 address"
  [[ -f $manifest && -f $(manifest etcd) ]] ||
    fail "$(node_path "$(k8s)")/manifests/kube-apiserver.yaml or etcd.yaml is missing: not a kubeadm control plane with local etcd"
  if [[ -f $(state_file) ]]; then
    # An earlier run stopped half way: finish it, unless it was a move to
    # another address than this instance's (it was relaunched meanwhile):
    # the node's files and etcd's member may name either, and the apiserver
    # may have taken writes since the backup, so a person decides.
    local moving_to backup
    OLD_IP=$(sed -n 's/^old_ip=//p' "$(state_file)")
    moving_to=$(sed -n 's/^new_ip=//p' "$(state_file)")
    backup=$(sed -n 's/^backup=//p' "$(state_file)")
    if [[ -n $moving_to && $moving_to != "$NEW_IP" ]]; then
      fail "a move from $OLD_IP to $moving_to stopped half way, and this instance is on $NEW_IP: its files and etcd's member may name $OLD_IP or $moving_to; restore /etc/kubernetes, kubelet's flags and etcd's data from ${backup:-the backup of that move}, remove $(node_path "$(state_file)"), then run the repair again"
    fi
    log "resuming the repair from $OLD_IP"
  else
    OLD_IP=$(manifest_flag "$manifest" advertise-address)
  fi
  valid_ip "$OLD_IP" || fail "no --advertise-address in the apiserver manifest"
  use_kubelet_runtime
  NODE=$(kubernetes_node_name) || fail "cannot tell the node's name from $(node_path "$(k8s)")/kubelet.conf (no system:node: user or client certificate)"
  detect_guard
  [[ $(systemctl is-active kubelet || true) != active ]] || APISERVER_UP_BEFORE=true
  log "node $NODE, configured for $OLD_IP, running on $NEW_IP, guard $GUARD${GUARD_REASON:+ ($GUARD_REASON)}"
}

missing_tools() { local tool; for tool in "$@"; do command -v "$tool" >/dev/null || printf '%s ' "$tool"; done; }

require_tools() {
  local missing
  missing=$(missing_tools "$@")
  [[ -z $missing ]] || refuse "missing on the node: ${missing% }"
}

# A prerequisite of a new IP not met: a failure, or, while a dry run on the
# same IP checks what a relaunch would need, its answer (in a subshell).
refuse() {
  if $CHECKING_RELAUNCH; then
    echo "$*"
    exit 1
  fi
  fail "$*"
}

preflight() {
  STEP=preflight
  local etcd_pki missing tools=(systemctl openssl hostname timeout base64 flock setsid ps)
  # A move, and the revision bump (which stops the control plane), need crictl
  # before anything is stopped; a drill's name pinning needs getent.
  if $DRY_RUN || $FROM_IMAGE || [[ $OLD_IP != "$NEW_IP" ]]; then tools+=("${VERIFY_TOOLS[@]}"); fi
  if $DRY_RUN || $QUARANTINE; then tools+=(getent); fi
  require_tools "${tools[@]}"
  missing=$(etcd_data_missing)
  [[ -z $missing ]] ||
    fail "$missing: refusing to release kubelet onto it (etcd would start a new, empty cluster); attach and mount the volume that holds etcd's data, then run the repair again"
  missing=$(volumes_unmounted)
  [[ -z $missing ]] || fail "$missing: refusing to call the node healthy without its data; mount it (mount -a), then run the repair again"
  [[ -f $(k8s)/admin.conf ]] || fail "$(node_path "$(k8s)")/admin.conf is missing"
  etcd_pki=$ROOT$(dirname "$(manifest_flag "$(manifest etcd)" trusted-ca-file)")
  [[ -f $etcd_pki/ca.crt && -f $etcd_pki/healthcheck-client.crt && -f $etcd_pki/healthcheck-client.key ]] ||
    fail "etcd's CA or healthcheck-client certificate is missing in $(node_path "$etcd_pki") (needed to reach etcd through crictl)"
  check_certificates
  if [[ $OLD_IP != "$NEW_IP" ]]; then
    preflight_new_ip
    ! $DRY_RUN || RELAUNCH=ok
  elif $DRY_RUN; then
    # As if the node had moved, to a documentation address (RFC 5737).
    if RELAUNCH=$(CHECKING_RELAUNCH=true NEW_IP=192.0.2.1 preflight_new_ip); then
      RELAUNCH=ok
    else
      RELAUNCH=${RELAUNCH:-"unexpected failure of the new IP's checks"}
      WARNINGS+=("a relaunch onto a new IP would fail: $RELAUNCH")
    fi
  fi
  endpoint_warning
  log "ready: nothing is stopped yet"
}

preflight_new_ip() {
  local version api file need avail output
  require_tools kubeadm du df
  version=$(kubeadm version -o short 2>/dev/null) || refuse "kubeadm is not usable: 'kubeadm version' failed"
  api=$(kubeadm config print init-defaults 2>/dev/null | sed -n 's/^apiVersion: \(kubeadm\.k8s\.io\/.*\)$/\1/p' | head -n 1)
  [[ -n $api ]] || refuse "kubeadm $version did not print its configuration API version"
  for file in pki/ca.crt pki/ca.key pki/etcd/ca.crt pki/etcd/ca.key pki/apiserver.crt pki/etcd/server.crt pki/etcd/peer.crt; do
    [[ -f $(k8s)/$file ]] || refuse "$(node_path "$(k8s)")/$file is missing: kubeadm cannot make the new certificates without it"
  done
  for file in pki/apiserver.crt pki/etcd/server.crt pki/etcd/peer.crt; do
    [[ -n $(cert_sans "$(k8s)/$file") ]] ||
      refuse "no subject alternative names read from $(node_path "$(k8s)")/$file (openssl x509 -text): its new certificate would lose them"
  done
  KUBEADM_CONFIG=$(derive_kubeadm_config "$api" "$ROOT/var/lib/lifeboat/pki-new") ||
    refuse "cannot derive the kubeadm configuration from the apiserver manifest and the certificates"
  file=$(mktemp)
  printf '%s\n' "$KUBEADM_CONFIG" >"$file"
  if ! output=$(kubeadm config validate --config "$file" 2>&1); then
    rm -f "$file"
    # kubeadm before v1.28 has no `config validate`: the certificates step
    # is then the first to read the configuration.
    [[ $output == *'unknown command "validate"'* ]] ||
      refuse "kubeadm $version refuses the configuration derived from the node's files: $output"
  fi
  rm -f "$file"
  # The backup: /etc/kubernetes and etcd's data, plus a margin.
  need=$(du -sk "$(k8s)" "$ROOT$(manifest_flag "$(manifest etcd)" data-dir)" 2>/dev/null | awk '{s += $1} END {print int(s * 1.1) + 1024}')
  file=$ROOT/var/lib/lifeboat
  while [[ ! -d $file ]]; do file=$(dirname "$file"); done
  avail=$(df -Pk "$file" | awk 'NR == 2 {print $4}')
  ((avail > need)) || refuse "not enough disk for the backup in $(node_path "$ROOT/var/lib/lifeboat"): ${need} KiB needed, ${avail} KiB free"
  log "kubeadm $version ($api) will make the certificates; backup needs ${need} KiB of ${avail} KiB free"
}

# A controlPlaneEndpoint that is a DNS name: lifeboat can fix this node's
# /etc/hosts, not the DNS records other nodes and clients use.
endpoint_warning() {
  local host
  host=$(kubeconfig_field "$(k8s)/admin.conf" server)
  host=${host#https://} host=${host%%/*} host=${host%:*}
  if [[ $OLD_IP != "$NEW_IP" && -n $host ]] && ! valid_ip "$host"; then
    WARNINGS+=("controlPlaneEndpoint $host is a DNS name: point it at $NEW_IP (lifeboat cannot change DNS records)")
  fi
}

stop_control_plane() {
  STEP=stop
  local ids
  APISERVER_UP_BEFORE=false
  if [[ $(systemctl is-active kubelet || true) == active ]]; then
    KUBELET_STOPPED=true
    echo "$$" >"$(kubelet_mark)"
    bounded systemctl stop kubelet || fail "cannot stop kubelet"
  fi
  ids=$(crictl ps -q --name '^(kube-apiserver|etcd|kube-controller-manager|kube-scheduler|cloud-controller-manager)$' \
    --label io.kubernetes.pod.namespace=kube-system) || fail "crictl cannot list the containers"
  if [[ -n $ids ]]; then
    # crictl stop without --timeout is an immediate SIGKILL (its timeout is
    # 0): SIGTERM first, so etcd shuts down cleanly.
    # shellcheck disable=SC2086 # one id per word
    bounded crictl stop --timeout "$CRI_STOP_TIMEOUT" $ids >/dev/null || fail "cannot stop the control-plane containers"
  fi
  wait_for "etcd to stop" etcd_stopped || fail "etcd's container is still running"
  log "kubelet and the control-plane containers are stopped"
}

backup() {
  STEP=backup
  local data file copy
  data=$ROOT$(manifest_flag "$(manifest etcd)" data-dir)
  BACKUP_DIR="$ROOT/var/lib/lifeboat/backup-$(date -u +%Y%m%dT%H%M%SZ)-$OLD_IP"
  [[ -e $BACKUP_DIR ]] && BACKUP_DIR="$BACKUP_DIR-$$"
  mkdir -p "$BACKUP_DIR"
  cp -a "$(k8s)" "$BACKUP_DIR/kubernetes"
  [[ ! -f $(state_file) ]] || echo "backup=$(node_path "$BACKUP_DIR")" >>"$(state_file)"
  # Each file under its path on the node: /etc/default/kubelet and
  # /etc/sysconfig/kubelet share a name.
  for file in $(kubelet_env_files) "$ROOT/var/lib/kubelet/config.yaml" "$ROOT/etc/hosts"; do
    [[ -f $file ]] || continue
    copy="$BACKUP_DIR/files$(node_path "$file")"
    mkdir -p "${copy%/*}"
    cp -a "$file" "$copy"
  done
  # A copy of a live database is not a backup: etcd must be stopped.
  [[ -z $(cri_ids etcd) ]] || fail "etcd is running: refusing to copy its data"
  if [[ -d $data ]]; then cp -a "$data" "$BACKUP_DIR/etcd"; fi
  log "backed up to $(node_path "$BACKUP_DIR")"
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
      CHANGED+=("$(node_path "$(k8s)")/manifests/$name (moved to $(node_path "$dir"))")
      log "quarantined $name"
    fi
  done
}

# Files on the node that name the IP: text files under /etc/kubernetes
# (webhook and encryption configurations in subdirectories too) but pki/,
# kubeadm's backups and dry runs (tmp/) and lifeboat's quarantine;
# /etc/hosts, kubelet's flags (--node-ip) and config.
ip_files() {
  local file k
  k=$(k8s)
  {
    find "$k" \( -path "$k/pki" -o -path "$k/tmp" -o -path "$k/lifeboat-quarantine" \) -prune -o -type f -print 2>/dev/null || true
    for file in "$ROOT/etc/hosts" "$ROOT/var/lib/kubelet/config.yaml" $(kubelet_env_files); do
      if [[ -f $file ]]; then echo "$file"; fi
    done
  } | while read -r file; do
    if names_ip "$file" "$OLD_IP"; then echo "$file"; fi
  done
}

rewrite() {
  STEP=rewrite
  local file
  while read -r file; do
    [[ -n $file ]] || continue
    replace_ip -i "$file"
    CHANGED+=("$(node_path "$file")")
  done < <(ip_files)
  log "replaced $OLD_IP by $NEW_IP in ${#CHANGED[@]} files"
}

certificates() {
  STEP=certificates
  local pki staging config phase base
  pki="$(k8s)/pki"
  staging="$ROOT/var/lib/lifeboat/pki-new"
  config="$ROOT/var/lib/lifeboat/kubeadm-certs.yaml"
  # kubeadm reuses any certificate it finds signed by the CA, whatever its
  # SANs (cmd/phases/init/certs.go, runCertPhase): it makes them in a
  # directory holding only the CAs, and the old ones stay in place until the
  # new ones move in.
  rm -rf "$staging"
  mkdir -p "$staging/etcd"
  chmod 700 "$staging"
  cp -a "$pki/ca.crt" "$pki/ca.key" "$staging/"
  cp -a "$pki/etcd/ca.crt" "$pki/etcd/ca.key" "$staging/etcd/"
  printf '%s\n' "$KUBEADM_CONFIG" >"$config"
  for phase in apiserver etcd-server etcd-peer; do
    kubeadm init phase certs "$phase" --config "$config" >&2 || fail "kubeadm init phase certs $phase failed"
  done
  for base in apiserver etcd/server etcd/peer; do
    mv -f "$staging/$base.key" "$pki/$base.key"
    mv -f "$staging/$base.crt" "$pki/$base.crt"
    CHANGED+=("$(node_path "$pki")/$base.crt")
  done
  rm -rf "$staging"
  log "made the apiserver, etcd server and etcd peer certificates for $NEW_IP"
}

# KUBELET_KUBEADM_ARGS as kubeadm writes it (phases/kubelet/flags.go):
# "--name=value ...", sorted by flag name, in the last environment file
# that sets it (kubeadm-flags.env).
set_kubeadm_flag() { # set_kubeadm_flag NAME VALUE
  local file f args arg kept=()
  file=$(kubeadm_flags_file)
  for f in $(kubelet_env_files); do
    if env_set "$f" KUBELET_KUBEADM_ARGS; then file=$f; fi
  done
  # shellcheck disable=SC2046 # one flag a word
  for arg in $(joined_flags $(env_var "$file" KUBELET_KUBEADM_ARGS)); do
    [[ $arg == --$1=* || $arg == --$1 ]] || kept+=("$arg")
  done
  kept+=("--$1=$2")
  args=$(printf '%s\n' "${kept[@]}" | LC_ALL=C sort -t= -k1,1 -k2 | paste -sd ' ')
  mkdir -p "$(dirname "$file")"
  if env_set "$file" KUBELET_KUBEADM_ARGS; then
    sed -i "s|^[[:space:]]*KUBELET_KUBEADM_ARGS=.*|KUBELET_KUBEADM_ARGS=\"$args\"|" "$file"
  else
    printf 'KUBELET_KUBEADM_ARGS="%s"\n' "$args" >>"$file"
  fi
  CHANGED+=("$(node_path "$file")")
}

# kubelet registers under --hostname-override or its host name; a replacement
# can come up with another host name, and NodeRestriction then keeps its
# kubelet from the real Node: pin the name before kubelet starts.
pin_node_name() {
  STEP=node-name
  local host current file
  host=$(hostname)
  host=${host,,}
  current=$(kubelet_flag hostname-override)
  if [[ ${current:-$host} == "$NODE" ]]; then
    log "kubelet registers as $NODE"
    return 0
  fi
  set_kubeadm_flag hostname-override "$NODE"
  # An extra flags file naming another node would win over kubeadm's.
  for file in $(kubelet_env_files); do
    if grep -Eq -- '--hostname-override[= ]' "$file" 2>/dev/null && [[ $(kubelet_flag hostname-override) != "$NODE" ]]; then
      sed -i -E "s/--hostname-override(=|[[:space:]]+)[^ \"']*/--hostname-override=$NODE/g" "$file"
      CHANGED+=("$(node_path "$file")")
    fi
  done
  log "the host name is $host: kubelet pinned to node $NODE (--hostname-override)"
}

# A drill clone (--quarantine) is released only behind the fence its boothook
# applied and checked this boot.
fence_holds() {
  $QUARANTINE || return 0
  [[ $(status_field fence) != ok ]] || return 0
  local why
  why=$(status_field fence_reason)
  fail "the drill fence is not in place this boot (${why:-no fence recorded in $(node_path "$(guard_status)")}): refusing to release kubelet"
}

# Proven from the clone, not assumed (--quarantine): no address of the live
# node (the fence's, /run/lifeboat/guard.conf) answers on the apiserver's or
# etcd's port, and the instance metadata serves the credentials of an
# instance profile (iam/info), reported for the drill to compare.
prove_isolation() {
  $QUARANTINE || return 0
  local live ip port rc token info profile tried=()
  live=$(sed -n "s/^FENCE='\(.*\)'\$/\1/p" "$ROOT/run/lifeboat/guard.conf" 2>/dev/null)
  [[ -n $live ]] || fail "no live address in /run/lifeboat/guard.conf: cannot prove the clone is cut off"
  for ip in $live; do
    for port in 6443 2379; do
      rc=0
      curl -sk --max-time 3 -o /dev/null "https://$([[ $ip == *:* ]] && echo "[$ip]" || echo "$ip"):$port/" 2>/dev/null || rc=$?
      [[ $rc == 7 || $rc == 28 ]] || fail "the live node's $ip:$port answers from the clone (curl exit $rc): refusing to release kubelet"
      tried+=("$ip:$port")
    done
  done
  if ! token=$(curl -sf --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$IMDS/latest/api/token") ||
    ! info=$(curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/iam/info"); then
    fail "the instance metadata names no instance profile (iam/info): cannot tell whose credentials the clone has"
  fi
  profile=$(sed -n 's/.*"InstanceProfileArn" *: *"\([^"]*\)".*/\1/p' <<<"$info" | head -n 1)
  ISOLATION="\"isolation\":{\"live_unreachable\":$(json_array "${tried[@]}"),\"instance_profile\":$(json_string "$profile")},"
  log "the live node does not answer (${tried[*]}); credentials of ${profile:-no instance profile}"
}

# A drill clone dials only itself: each server host of /etc/kubernetes/*.conf
# that is a name is mapped to the clone's address in /etc/hosts (read before
# DNS), and must resolve to nothing else.
pin_names() {
  $QUARANTINE || return 0
  local host hosts=$ROOT/etc/hosts got
  while read -r host; do
    if [[ $host == \[* ]] || valid_ip "$host"; then continue; fi
    if ! grep -Eq "^${NEW_IP//./\\.}[[:space:]]+${host//./\\.}([[:space:]]|$)" "$hosts" 2>/dev/null; then
      { echo "$NEW_IP $host"; cat "$hosts" 2>/dev/null; } >"$hosts.lifeboat"
      cat "$hosts.lifeboat" >"$hosts" && rm "$hosts.lifeboat"
      CHANGED+=("/etc/hosts: $host pinned to $NEW_IP")
    fi
    got=$(getent ahosts "$host" 2>/dev/null | awk '{ print $1 }' | sort -u | paste -sd ' ') || true
    [[ $got == "$NEW_IP" ]] ||
      fail "$host resolves to ${got:-nothing}, not only to the clone's $NEW_IP: refusing to release kubelet (see /etc/hosts)"
  done < <(sed -n 's|^ *server: https\{0,1\}://\([^:/]*\).*|\1|p' "$(k8s)"/*.conf 2>/dev/null | sort -u)
}

# Releases lifeboat's boot guard: the flag its drop-in's ConditionPathExists=
# waits for (/run: this boot), and the marker naming this instance on its
# disk, so the guard lets every later boot of this instance through (while
# etcd's data is in place) and holds the next instance on this disk again.
# Then a start of kubelet: a blocking start (bounded by the budget); the
# repair runs after boot, not in cloud-init's ordering, so it cannot
# deadlock, and it returns once the start job ran, so is-active below tells
# whether kubelet runs (a start systemd skips for an unmet condition exits 0).
release() {
  STEP=release
  local id
  fence_holds
  pin_names
  prove_isolation
  if [[ -f $(guard_dropin) ]]; then
    if id=$(instance_id); then
      mkdir -p "$(dirname "$(guard_marker)")"
      echo "$id" >"$(guard_marker)"
    else
      WARNINGS+=("cannot read this instance's id from cloud-init: the guard holds kubelet again on its next boot")
    fi
    mkdir -p "$(dirname "$(guard_flag)")"
    touch "$(guard_flag)"
    if [[ $GUARD == held ]]; then
      GUARD=released GUARD_REASON="released by lifeboat-repair for ${id:-this boot}"
      record_release
    fi
  fi
  bounded systemctl start kubelet >&2 || fail "systemctl start kubelet failed"
  [[ $(systemctl is-active kubelet || true) == active ]] ||
    fail "kubelet is not active after its start: a ConditionPathExists= of its unit is not met (see systemctl status kubelet)"
  KUBELET_STOPPED=false
  rm -f "$(kubelet_mark)"
  log "kubelet started (guard $GUARD)"
}

# One attempt at moving this member's peer URL from the old IP to the new
# one (done when no member names the old IP and one names the new).
update_etcd_member() {
  local list line id name urls
  list=$(etcdctl_cri member list) || return 1
  # "<id>, started, <name>, <peer URLs>, <client URLs>, <is learner>"
  line=$(awk -F', ' -v old="://$OLD_IP:" 'index($4, old)' <<<"$list" | head -n 1)
  if [[ -z $line ]]; then
    [[ -n $(awk -F', ' -v new="://$NEW_IP:" 'index($4, new)' <<<"$list") ]] || return 1
    log "etcd's member already has its peer URL on $NEW_IP"
    return 0
  fi
  id=${line%%,*}
  name=$(awk -F', ' '{print $3}' <<<"$line")
  urls=$(awk -F', ' '{print $4}' <<<"$line")
  urls=${urls//:\/\/$OLD_IP:/:\/\/$NEW_IP:}
  etcdctl_cri member update "$id" --peer-urls="$urls" >/dev/null || return 1
  CHANGED+=("etcd member $name: peer URL $urls")
  log "etcd member $name ($id): peer URL now $urls"
}

# etcd keeps its members' peer URLs in its own data: the manifest's flags do
# not change them once the member exists.
move_etcd_member() {
  STEP=etcd
  wait_for "etcd to move its member" update_etcd_member || fail "cannot move etcd's member peer URL to $NEW_IP"
}

wait_ready() {
  STEP=ready
  wait_for "the apiserver" readyz "$NEW_IP" || fail "the apiserver is not ready at $(api_url "$NEW_IP") within the budget"
}

# The objects (kind namespace name) in a kubectl List that name the IP.
objects_naming() { # objects_naming IP < LIST_YAML
  awk -v re="$(ip_regex "$1")" '
    function flush() { if (kind != "" && hit) print kind, ns, name; kind = ""; ns = ""; name = ""; hit = 0; meta = 0 }
    /^- / { flush(); in_item = 1 }
    /^[^- ]/ { flush(); in_item = 0 }
    !in_item { next }
    { line = substr($0, 3) }
    line ~ /^kind: / { kind = substr(line, 7) }
    line ~ /^metadata:/ { meta = 1; next }
    line ~ /^[^ ]/ { meta = 0 }
    meta && line ~ /^  name: / { name = substr(line, 9) }
    meta && line ~ /^  namespace: / { ns = substr(line, 14) }
    $0 ~ re { hit = 1 }
    END { flush() }
  '
}

# DaemonSets and Deployments and the ConfigMaps their pods read (in volumes,
# envFrom or env valueFrom): "kind ns name configmap".
workload_configmaps() {
  awk '
    function flush() { if (kind == "DaemonSet" || kind == "Deployment") for (c in refs) print tolower(kind), ns, name, c; delete refs; kind = ""; ns = ""; name = ""; meta = 0 }
    /^- / { flush(); in_item = 1 }
    /^[^- ]/ { flush(); in_item = 0 }
    !in_item { next }
    { line = substr($0, 3) }
    line ~ /^kind: / { kind = substr(line, 7) }
    line ~ /^metadata:/ { meta = 1; next }
    line ~ /^[^ ]/ { meta = 0 }
    meta && line ~ /^  name: / { name = substr(line, 9) }
    meta && line ~ /^  namespace: / { ns = substr(line, 14) }
    line ~ /^ *(- )?(configMap|configMapKeyRef|configMapRef):$/ { want = 1; ind = match(line, /[^ -]/); next }
    want && match(line, /[^ -]/) <= ind { want = 0 }
    want && line ~ /^ *name: / { sub(/^ *name: /, "", line); refs[line] = 1; want = 0 }
  '
}

CLUSTER_LIST=""
RESTART_WORKLOADS=() # "kind ns/name"
ENV_WORKLOADS=()

update_cluster_objects() {
  STEP=cluster
  local kind ns name resource object cm_changed=() cm
  CLUSTER_LIST=$(kube get configmaps,daemonsets,deployments -A -o yaml) || fail "cannot list ConfigMaps and workloads"
  while read -r kind ns name; do
    [[ -n $kind ]] || continue
    resource=${kind,,}
    object=$(kube get "$resource" "$name" -n "$ns" -o yaml) || fail "cannot read $resource $ns/$name"
    replace_ip <<<"$object" | kube replace -f - >/dev/null || fail "cannot update $resource $ns/$name"
    CHANGED+=("$resource $ns/$name")
    log "$resource $ns/$name now names $NEW_IP"
    case $kind in
      ConfigMap) cm_changed+=("$ns/$name") ;;
      DaemonSet | Deployment) ENV_WORKLOADS+=("$resource $ns/$name") ;;
    esac
  done < <(objects_naming "$OLD_IP" <<<"$CLUSTER_LIST")
  # Workloads whose pods read a changed ConfigMap only at start.
  while read -r kind ns name cm; do
    [[ -n $cm ]] || continue
    if [[ " ${cm_changed[*]} " == *" $ns/$cm "* && " ${RESTART_WORKLOADS[*]} " != *" $kind $ns/$name "* ]]; then
      RESTART_WORKLOADS+=("$kind $ns/$name")
    fi
  done < <(workload_configmaps <<<"$CLUSTER_LIST")
}

recreated() { # recreated NAME NAMESPACE OLD_IDS: a container other than those runs
  local now
  now=$(cri_ids "$1" "$2")
  [[ -n $now && " $3 " != *" $now "* ]]
}

# kubelet recreates a container that is gone; the new one reads its
# ConfigMaps anew. A Deployment with no container (by name, in its
# namespace) on this node: returns 1, nothing touched.
restart_through_cri() { # restart_through_cri KIND NS NAME
  local kind=$1 ns=$2 name=$3 names container ids id here=""
  names=$(kube get "$kind" "$name" -n "$ns" -o 'jsonpath={.spec.template.spec.containers[*].name}') ||
    fail "cannot read the containers of $kind $ns/$name"
  for container in $names; do here+=$(cri_ids "$container" "$ns"); done
  [[ $kind == daemonset || -n $here ]] || return 1
  for container in $names; do
    ids=$(cri_ids "$container" "$ns")
    for id in $ids; do
      bounded crictl stop "$id" >/dev/null || fail "crictl stop $id ($container) failed"
      bounded crictl rm "$id" >/dev/null || fail "crictl rm $id ($container) failed"
    done
    wait_for "kubelet to recreate $container" recreated "$container" "$ns" "$ids" ||
      fail "kubelet did not recreate $container of $kind $ns/$name"
    log "$container of $kind $ns/$name restarted through the CRI"
  done
}

# With --quarantine the controllers are held (a rollout would do nothing):
# the containers on this node are restarted through the CRI.
restart_components() {
  STEP=restart
  local entry kind ref
  for entry in "${RESTART_WORKLOADS[@]}"; do
    kind=${entry%% *} ref=${entry#* }
    if ! $QUARANTINE; then
      kube -n "${ref%%/*}" rollout restart "$kind" "${ref#*/}" >/dev/null || fail "cannot restart $entry"
      CHANGED+=("$entry: rollout restarted")
    elif restart_through_cri "$kind" "${ref%%/*}" "${ref#*/}"; then
      CHANGED+=("$entry: containers restarted through the CRI")
    else
      WARNINGS+=("$entry reads a ConfigMap that now names $NEW_IP but has no pod on this node: its pods keep the old address until 'kubectl -n ${ref%%/*} rollout restart $kind ${ref#*/}' once the controllers run")
    fi
  done
  if $QUARANTINE; then
    for entry in "${ENV_WORKLOADS[@]}"; do
      WARNINGS+=("$entry names the address in its pods' env: its pods on this clone keep the old one until its controller replaces them")
    done
  fi
}

# Nodes that joined through the old IP (the endpoint an IP: admin.conf now
# names the new one) keep it in their kubelet.conf: one warning names them
# and the fix. Not in drills: a clone lists the source cluster's nodes.
worker_warning() {
  local host names n list fix
  host=$(kubeconfig_field "$(k8s)/admin.conf" server)
  host=${host#https://} host=${host%%/*} host=${host%:*}
  ! $QUARANTINE && [[ $host == "$NEW_IP" ]] || return 0
  fix="as root: sed -i 's#https://${OLD_IP//./\\.}:#https://$NEW_IP:#' /etc/kubernetes/kubelet.conf && systemctl restart kubelet (and the same on kube-proxy's kubeconfig where it is a file, not kubeadm's ConfigMap)"
  if ! names=$(kube get nodes -o name); then
    WARNINGS+=("cannot list the nodes: those that joined through $OLD_IP still reach it; on each, $fix")
    return 0
  fi
  names=$(grep -vxF -- "node/$NODE" <<<"$names") || return 0
  names=${names//node\//}
  n=$(wc -l <<<"$names")
  list=$(head -n 10 <<<"$names" | paste -sd ' ')
  ((n <= 10)) || list+=" and $((n - 10)) more (kubectl get nodes)"
  WARNINGS+=("$n other node(s) still reach the apiserver at $OLD_IP: $list; on each, $fix")
}

verify() {
  STEP=verify
  local status missing external=false why=""
  [[ $(systemctl is-active kubelet || true) == active ]] || fail "kubelet is not active"
  missing=$(missing_tools "${VERIFY_TOOLS[@]}")
  [[ -z $missing ]] || fail "kubelet is started, but the control plane cannot be verified: missing on the node: ${missing% }"
  wait_for "the apiserver" readyz "$NEW_IP" || fail "the apiserver is not ready at $(api_url "$NEW_IP") within the budget"
  wait_for "etcd" etcd_healthy || fail "etcd is not healthy (crictl exec etcdctl endpoint health)"
  [[ $(kubelet_flag cloud-provider) != external ]] || external=true
  if $external && $QUARANTINE && [[ $OLD_IP != "$NEW_IP" ]]; then
    wait_for "node $NODE's address" patch_node_address || fail "cannot patch node $NODE's status address to $NEW_IP"
  fi
  if ! wait_for "node $NODE to be Ready on $NEW_IP" node_ready_on_ip; then
    status=$(node_status || true)
    ! $external || why="; kubelet runs with --cloud-provider=external, so only the cloud controller manager updates the Node's addresses (on its own period, --node-status-update-frequency) and it has not within the ${TIMEOUT}s budget: check that it runs"
    fail "node $NODE is not Ready on $NEW_IP (Ready=${status%% *}, InternalIP=${status#* })$why"
  fi
  log "healthy: /readyz, etcd, node $NODE Ready on $NEW_IP"
}

repair_new_ip() {
  mkdir -p "$(dirname "$(state_file)")"
  printf 'old_ip=%s\nnew_ip=%s\n' "$OLD_IP" "$NEW_IP" >"$(state_file)"
  stop_control_plane
  backup
  bump_etcd_revision
  quarantine
  rewrite
  certificates
  pin_node_name
  release
  move_etcd_member
  wait_ready
  update_cluster_objects
  restart_components
  worker_warning
  verify
  rm -f "$(state_file)"
}

# Run in the etcd image (its sh is bash-static; no grep): etcdutl or etcdctl
# restores the member's db with the revision bumped and marked compacted
# (etcd 3.5.10 and later; etcdctl 3.6 has no restore). Exit 3: neither can.
# shellcheck disable=SC2016 # expanded by the image's sh
RESTORE_SH='for t in etcdutl etcdctl; do
  command -v "$t" >/dev/null || continue
  case $("$t" snapshot restore --help 2>&1) in *--bump-revision*) ;; *) continue ;; esac
  exec "$t" snapshot restore "$1/member/snap/db" --skip-hash-check --data-dir "$1/lifeboat-restore" --name "$2" \
    --initial-advertise-peer-urls "$3" --initial-cluster "$4" --initial-cluster-token "$5" --bump-revision "$6" --mark-compacted
done
echo "no etcdutl or etcdctl in the etcd image has snapshot restore --bump-revision (etcd 3.5.10 and later)"
exit 3'

# --from-image: etcd's revision went back with the image while watchers
# (kubelets, controllers) hold newer resource versions. etcd's db is restored
# with the revision bumped by ETCD_REVISION_BUMP and compacted: every watch
# from before gets "required revision has been compacted" and relists (WAL
# entries the db had not applied yet, at most etcd's 100 ms batch, are lost).
# No etcd tool on the host: the etcd image runs once under containerd's ctr,
# etcd stopped, after the backup. Once per instance (a marker). Without a
# way, a warning says so and the node comes up on the image's revision.
bump_etcd_revision() {
  $FROM_IMAGE || return 0
  STEP=revision
  local marker=$ROOT/var/lib/lifeboat/revision-bumped manifest dir data id token address out rc=0 why=""
  id=$(instance_id) || id=""
  if [[ -n $id && $(head -n 1 "$marker" 2>/dev/null) == "$id" ]]; then
    ETCD_BUMP=$(sed -n 2p "$marker")
    log "etcd's revision was bumped by $ETCD_BUMP on $id already"
    return 0
  fi
  ETCD_BUMP=0
  manifest=$(manifest etcd)
  dir=$(manifest_flag "$manifest" data-dir) dir=${dir:-/var/lib/etcd} data=$ROOT$dir
  token=$(manifest_flag "$manifest" initial-cluster-token)
  address=${CONTAINER_RUNTIME_ENDPOINT:-unix:///run/containerd/containerd.sock} address=${address#unix://}
  if [[ $(manifest_flag "$manifest" initial-cluster) == *,* || -n $(manifest_flag "$manifest" wal-dir) ]]; then
    why="etcd has several members or a separate --wal-dir"
  elif ! command -v ctr >/dev/null; then
    why="no ctr (containerd's client) on the node to run the etcd image"
  elif [[ $address != *containerd* ]]; then
    why="the container runtime ($address) is not containerd"
  fi
  if [[ -z $why ]]; then
    if [[ $(systemctl is-active kubelet || true) == active ]] || ! etcd_stopped; then stop_control_plane; fi
    [[ -n $BACKUP_DIR ]] || backup
    STEP=revision
    rm -rf "$data/lifeboat-restore"
    out=$(bounded ctr --address "$address" --namespace k8s.io run --rm --mount "type=bind,src=$data,dst=$dir,options=rbind:rw" \
      "$(sed -n 's/^ *image: *//p' "$manifest" | head -n 1)" "lifeboat-revision-$$" sh -c "$RESTORE_SH" sh "$dir" \
      "$(manifest_flag "$manifest" name)" "$(manifest_flag "$manifest" initial-advertise-peer-urls)" \
      "$(manifest_flag "$manifest" initial-cluster)" "${token:-etcd-cluster}" "$ETCD_REVISION_BUMP" 2>&1) || rc=$?
    if ((rc == 0)) && [[ -s $data/lifeboat-restore/member/snap/db ]]; then
      chown -R "$(stat -c %u:%g "$data/member")" "$data/lifeboat-restore"
      mv "$data/member" "$data/lifeboat-member-old"
      mv "$data/lifeboat-restore/member" "$data/member" ||
        { mv "$data/lifeboat-member-old" "$data/member"; fail "cannot move etcd's restored member into $dir"; }
      rm -rf "$data/lifeboat-member-old" "$data/lifeboat-restore"
      ETCD_BUMP=$ETCD_REVISION_BUMP
      mkdir -p "${marker%/*}"
      printf '%s\n%s\n' "$id" "$ETCD_BUMP" >"$marker"
      CHANGED+=("etcd's revision bumped by $ETCD_BUMP and compacted: every watcher relists")
      log "etcd's revision bumped by $ETCD_BUMP"
      return 0
    fi
    rm -rf "$data/lifeboat-restore"
    why=$(tail -n 1 <<<"$out")
    ((rc == 3)) || why="the restore in the etcd image failed (exit $rc): $why"
  fi
  WARNINGS+=("etcd's revision is the image's, not bumped ($why): watchers holding newer resource versions may miss changes until they relist (restart kubelet on every node, then the controllers)")
  log "etcd's revision not bumped: $why"
}

# One repair at a time on a node: two invocations for one instance (a retry
# while the first still runs, or the warning's and the state change's) wait
# for each other here, within the budget, and the second finds the work
# done. The lock lives on the node, so it needs nothing of AWS and dies with
# the instance.
one_at_a_time() {
  local file="$ROOT/run/lifeboat/repair.lock"
  mkdir -p "$(dirname "$file")"
  exec 9>"$file"
  flock -w "$(remaining)" 9 || fail "another lifeboat repair of this node still runs after ${TIMEOUT}s"
}

# --health: the verification alone, read-only, on NODE as given.
health() {
  local ready=false etcd=false registered=false mounts=false unmounted="" status="" ip problems=() message
  STEP=health
  if ! NEW_IP=$(imds_ip) || ! valid_ip "$NEW_IP"; then
    health_result failed false false false false "" "cannot read local-ipv4 from IMDSv2 at $IMDS"
  fi
  use_kubelet_runtime
  while true; do
    $ready || { readyz "$NEW_IP" && ready=true; }
    $etcd || { etcd_healthy && etcd=true; }
    if $ready && node_ready_on_ip; then registered=true; else registered=false; fi
    unmounted=$(volumes_unmounted)
    if [[ -z $unmounted ]]; then mounts=true; else mounts=false; fi
    if $ready && $etcd && $registered && $mounts; then break; fi
    (($(remaining) > 0)) || break
    sleep 2
  done
  $ready && status=$(node_status || true)
  ip=${status#* }
  [[ $status == *" "* ]] || ip=""
  if $ready && $etcd && $registered && $mounts; then
    health_result ok true true true true "$ip" "node $NODE Ready on $NEW_IP; apiserver ready; etcd healthy; data volumes mounted"
  fi
  $ready || problems+=("the apiserver is not ready at $(api_url "$NEW_IP")")
  $etcd || problems+=("etcd is not healthy")
  $registered || problems+=("node $NODE is not Ready on $NEW_IP (Ready=${status%% *}, InternalIP=${ip:-none})")
  $mounts || problems+=("$unmounted")
  message=$(printf '%s; ' "${problems[@]}")
  health_result failed "$ready" "$etcd" "$registered" "$mounts" "$ip" "${message%; }"
}

# health_result RESULT READYZ ETCD NODE_READY MOUNTS INTERNAL_IP MESSAGE: prints it and exits
health_result() {
  printf '{"result":"%s","step":"health","readyz":%s,"etcd":%s,"node_ready":%s,"mounts":%s,"internal_ip":%s,"message":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$(json_string "$6")" "$(json_string "$7")" >&7
  [[ $1 == ok ]] && exit 0
  exit 1
}

usage() {
  echo "lifeboat-repair: $1" >&2
  echo "usage: lifeboat-repair.sh [--dry-run] [--quarantine] [--from-image] [--timeout SECONDS] [--root DIR]" >&2
  echo "       lifeboat-repair.sh --health NODE_NAME [--timeout SECONDS] [--root DIR]" >&2
  result failed "$1"
  exit $EXIT_USAGE
}

dry_run_plan() {
  if [[ $OLD_IP == "$NEW_IP" ]]; then
    echo "same IP: would pin the node name if needed, release the guard, start kubelet and verify /readyz, etcd and node $NODE"
  else
    echo "would back up, stop kubelet, replace $OLD_IP by $NEW_IP in $(ip_files | wc -l) files, make 3 certificates with kubeadm, pin the node name if needed, release the guard, move the etcd peer URL, rewrite the cluster's objects naming $OLD_IP and restart what reads them"
  fi
}

main() {
  while (($#)); do
    case $1 in
      --dry-run) DRY_RUN=true ;;
      --quarantine) QUARANTINE=true ;;
      --health)
        STEP=health
        [[ ${2:-} =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || usage "the node name is required after --health"
        NODE=$2 HEALTH=true
        shift
        ;;
      --from-image) FROM_IMAGE=true ;;
      --timeout)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage "--timeout needs a number of seconds"
        TIMEOUT=$2 TIMEOUT_GIVEN=true
        shift
        ;;
      --root)
        [[ -n ${2:-} ]] || usage "--root needs a directory"
        ROOT=$2
        shift
        ;;
      -h | --help) sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]:-$0}" 2>/dev/null | sed '$d' || true; exit 0 ;;
      *) usage "unknown argument '$1'" ;;
    esac
    shift
  done
  if $HEALTH; then
    $TIMEOUT_GIVEN || TIMEOUT=$HEALTH_TIMEOUT
    DEADLINE=$((SECONDS + TIMEOUT))
    health
  fi
  DEADLINE=$((SECONDS + TIMEOUT))

  detect
  preflight
  if $DRY_RUN; then
    result dry-run "$(dry_run_plan)"
    exit $EXIT_NOTHING_TO_DO
  fi
  arm_watchdog
  one_at_a_time
  # A repair that held the lock may have moved the node meanwhile: what
  # detect found before the lock is stale.
  local old=$OLD_IP
  detect
  [[ $OLD_IP == "$old" ]] || preflight

  if [[ $OLD_IP == "$NEW_IP" ]]; then
    quarantine
    pin_node_name
    bump_etcd_revision
    release
    verify
    if ((${#CHANGED[@]})); then
      result repaired "healthy on $NEW_IP after changing ${#CHANGED[@]} things"
      exit $EXIT_REPAIRED
    fi
    result ok "healthy on $NEW_IP"
    exit $EXIT_NOTHING_TO_DO
  fi

  repair_new_ip
  result repaired "moved from $OLD_IP to $NEW_IP"
  exit $EXIT_REPAIRED
}

# Run, unless sourced (tests call the functions); `bash -s` reading the script
# from stdin, as SSM runs it, has no BASH_SOURCE. Nothing the script runs
# reads the rest of the script from stdin.
if [[ ${BASH_SOURCE[0]:-$0} == "$0" ]]; then
  main "$@" </dev/null
fi
