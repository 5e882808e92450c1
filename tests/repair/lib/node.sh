# shellcheck shell=bash
# The fixture node that the stand-ins in tests/repair/bin share: what kubelet,
# containerd, the kernel and the apiserver do on a kubeadm control plane, as
# far as the repair and health scripts depend on it. Sourced by the stand-ins.
#
#   FAKE_ROOT  the node's disk (the scripts run with --root / LIFEBOAT_ROOT on it)
#   FAKE_NODE  what is not on the disk: host (ip, hostname), systemd's unit
#              state, containers and pods (containerd), iptables (kernel)
#   FAKE_LOG   one line per stand-in call, and what the model did
#
# Behaviour modelled, with the upstream source it follows:
# - kubelet (pkg/kubelet/config/file.go, pkg/kubelet/kubelet.go): while its
#   unit is active, one container per static pod manifest in
#   /etc/kubernetes/manifests, recreated when the manifest changes or the
#   container exits, stopped when the manifest goes. Stopping kubelet leaves
#   the containers running. Pods of DaemonSets run only once kubelet can reach
#   the apiserver as its node.
# - kubelet's node name (cmd/kubelet/app/server.go getNodeName, with the
#   host name of k8s.io/component-helpers/node/util GetHostname): the
#   --hostname-override flag, else the lower-cased hostname. Its flags come
#   from the EnvironmentFile= lines of the 10-kubeadm.conf drop-in, in the
#   order of its ExecStart= (KUBELET_KUBEADM_ARGS, then KUBELET_EXTRA_ARGS; the
#   last value of a flag wins).
# - NodeRestriction (plugin/pkg/admission/noderestriction/admission.go): a
#   kubelet whose credentials say system:node:A may not create or update node
#   B; the real node then gets no status and no lease from it.
# - --node-ip (pkg/kubelet/kubelet_node_status.go, validateNodeIP): an address
#   the host does not have fails every status update ("node IP ... not found
#   in the host's network interfaces"), so the Node keeps its old addresses.
# - node lifecycle controller (pkg/controller/nodelifecycle): with the
#   controller-manager running, a Node whose kubelet does not renew its lease
#   is marked Ready=Unknown (its grace period is long gone after a relaunch).
# - DaemonSet and Deployment controllers (pkg/controller/daemon,
#   pkg/controller/deployment): a pod whose template no longer matches its
#   DaemonSet's or Deployment's is replaced, only while the
#   controller-manager runs. A container recreated by kubelet for the same pod
#   keeps the pod's spec (env is immutable) but reads ConfigMaps anew
#   (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables, at each start).
#   A Deployment has one replica, on this node only when it tolerates the
#   control-plane taint (deployment_here).
# - etcd: the real etcd (Debian's etcd-server; FAKE_ETCD_DIR: another
#   version's etcd and etcdctl) runs as the etcd container,
#   from the manifest's own flags, its paths mapped through the manifest's
#   hostPath volumes. Addresses the host does not have cannot be bound
#   ("bind: cannot assign requested address").
# - the apiserver (not a process here) is ready while its container runs and
#   its storage answers: the etcd pod runs and listens on the port of
#   --etcd-servers, and the apiserver's client certificate for it
#   (--etcd-certfile) has not expired. It serves on every address of the host
#   (--bind-address 0.0.0.0); clients verify its certificate (--tls-cert-file)
#   for the name they dial, which resolves through /etc/hosts only. Its
#   storage is the real etcd: the objects are YAML under /registry/.
# - the kernel: traffic to an address that filter OUTPUT rejects (or mangle
#   POSTROUTING drops) is refused (or times out); see bin/iptables.
#
# Every stand-in runs model_begin first: it takes the node's lock, loads the
# container table and lets kubelet and the controllers catch up (node_sync);
# the table is saved when the stand-in exits.

model_log() { printf '%s\n' "$*" >>"$FAKE_LOG"; }

model_begin() {
  model_begin_quiet
  node_sync
}

# The same without letting kubelet and the controllers catch up (systemctl
# does it around its own change; iptables does not need it).
model_begin_quiet() {
  exec {MODEL_LOCK_FD}>"$FAKE_NODE/lock"
  flock "$MODEL_LOCK_FD"
  ctr_load
  trap model_end EXIT
}

model_end() {
  local rc=$?
  ctr_save
  exit "$rc"
}

read_file() { # read_file VAR FILE: the file's content without a trailing newline ("" when missing)
  local -n into=$1
  into=""
  [[ -f $2 ]] || return 1
  IFS= read -r -d '' into <"$2" || true
  into=${into%$'\n'}
}

# A value computed from files, kept in FAKE_NODE/cache until one of them
# changes (a cache entry newer than all its sources is valid).
cached() { # cached NAME SOURCE... -- COMMAND...: prints COMMAND's output
  local name=${1//\//_} file sources=() value
  shift
  while [[ $1 != -- ]]; do sources+=("$1"); shift; done
  shift
  file=$FAKE_NODE/cache/$name
  if [[ -f $file ]]; then
    local fresh=true src
    for src in "${sources[@]}"; do
      [[ -e $src && ! $file -nt $src ]] && fresh=false
    done
    if $fresh; then read_file value "$file"; printf '%s\n' "$value"; return 0; fi
  fi
  mkdir -p "$FAKE_NODE/cache"
  value=$("$@") || true
  printf '%s\n' "$value" >"$file"
  printf '%s\n' "$value"
}

HOST_IP=""
host_ip() {
  [[ -n $HOST_IP ]] || read_file HOST_IP "$FAKE_NODE/host/ip"
  echo "$HOST_IP"
}
host_name() { local name; read_file name "$FAKE_NODE/host/hostname"; echo "$name"; }
# FAKE_NODE/host/ipv6: the host's IPv6 addresses, one a line (a dual-stack host).
host_has_address() {
  [[ -n $HOST_IP ]] || read_file HOST_IP "$FAKE_NODE/host/ip"
  [[ $1 == 127.0.0.1 || $1 == localhost || $1 == "$HOST_IP" ]] || grep -qxF "$1" "$FAKE_NODE/host/ipv6" 2>/dev/null
}

# A host name as glibc resolves it on the node (nsswitch "hosts: files dns"):
# /etc/hosts first, then the fixture's DNS (FAKE_NODE/host/dns, "NAME
# ADDRESS" lines, the answers of the VPC's resolver). resolve_all prints
# every address of every /etc/hosts line naming it, as the files backend
# collects them (nss/nss_files/files-hosts.c, gethostbyname4); resolve_host
# the first, the one a client dials.
resolve_host() { resolve_all "$1" | head -n 1 | grep .; }
resolve_all() {
  local address names name found=false
  if [[ $1 =~ ^[0-9.]+$ || $1 == *:* ]]; then echo "$1"; return; fi
  [[ $1 == localhost ]] && { echo 127.0.0.1; return; }
  if [[ -f $FAKE_ROOT/etc/hosts ]]; then
    while read -r address names; do
      [[ $address == \#* ]] && continue
      for name in $names; do
        [[ $name == "$1" ]] && { echo "$address"; found=true; }
      done
    done <"$FAKE_ROOT/etc/hosts"
  fi
  $found && return 0
  [[ -f $FAKE_NODE/host/dns ]] && awk -v n="$1" '$1 == n { print $2; f = 1 } END { exit !f }' "$FAKE_NODE/host/dns"
}

# --- the kernel's packet filter ---------------------------------------------

# ipt_cidr 4|6 ADDRESS[/PREFIX]: the network as iptables keeps it (masked to
# its prefix, /32 or /128 by default, IPv6 in inet_ntop's compressed form);
# fails for anything that is no address of that family.
ipt_cidr() {
  local fam=$1 a=${2%/*} n=${2#*/} max=32 hex
  [[ $2 == */* ]] || n=""
  [[ $fam == 6 ]] && max=128
  [[ -z $n ]] && n=$max
  [[ $n =~ ^[0-9]+$ ]] && ((n <= max)) || return 1
  hex=$(ip_hex "$fam" "$a") || return 1
  hex=$(hex_mask "$hex" "$n")
  if [[ $fam == 4 ]]; then
    printf '%d.%d.%d.%d/%d\n' "0x${hex:0:2}" "0x${hex:2:2}" "0x${hex:4:2}" "0x${hex:6:2}" "$n"
  else
    echo "$(ip6_text "$hex")/$n"
  fi
}

# ip_hex 4|6 ADDRESS: the address as 8 or 32 hex digits.
ip_hex() {
  local a=$2 out="" g head tail groups i
  if [[ $1 == 4 ]]; then
    [[ $a =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
    for i in 1 2 3 4; do
      ((BASH_REMATCH[i] <= 255)) || return 1
      out+=$(printf %02x "${BASH_REMATCH[i]}")
    done
    echo "$out"
    return
  fi
  [[ $a =~ ^[0-9a-fA-F:]+$ && $a == *:* && $a != *:::* ]] || return 1
  if [[ $a == *::* ]]; then
    head=${a%%::*} tail=${a#*::}
    [[ $tail != *::* ]] || return 1
    groups=$(( (${#head} ? $(tr -cd : <<<"$head" | wc -c) + 1 : 0) + (${#tail} ? $(tr -cd : <<<"$tail" | wc -c) + 1 : 0) ))
    ((groups <= 7)) || return 1
    a=$head
    for ((i = groups; i < 8; i++)); do a+=:0; done
    a=${a#:}:$tail
    a=${a%:}
  fi
  IFS=: read -ra g <<<"$a"
  ((${#g[@]} == 8)) || return 1
  for i in "${g[@]}"; do
    [[ $i =~ ^[0-9a-fA-F]{1,4}$ ]] || return 1
    out+=$(printf %04x "0x$i")
  done
  echo "$out"
}

# hex_mask HEX PREFIX: HEX with every bit past PREFIX cleared.
hex_mask() {
  local hex=$1 n=$2 out="" i d keep
  for ((i = 0; i < ${#hex}; i++)); do
    keep=$((n - 4 * i))
    d=$((0x${hex:i:1}))
    if ((keep <= 0)); then d=0; elif ((keep < 4)); then d=$((d & (0xf << (4 - keep)) & 0xf)); fi
    out+=$(printf %x "$d")
  done
  echo "$out"
}

# ip6_text HEX32: inet_ntop's text (RFC 5952: the longest run of two or more
# zero groups, the first of equals, becomes "::").
ip6_text() {
  local g=() i best=-1 bestlen=1 run=0 start=0 out=""
  for ((i = 0; i < 8; i++)); do g+=("$(printf %x "0x${1:4*i:4}")"); done
  for ((i = 0; i <= 8; i++)); do
    if ((i < 8)) && [[ ${g[i]} == 0 ]]; then
      ((run == 0)) && start=$i
      run=$((run + 1))
    else
      if ((run > bestlen)); then best=$start bestlen=$run; fi
      run=0
    fi
  done
  for ((i = 0; i < 8; i++)); do
    if ((i == best)); then out+="::"; i=$((best + bestlen - 1)); continue; fi
    [[ $out == "" || $out == *:: ]] || out+=:
    out+=${g[i]}
  done
  echo "$out"
}

# in_cidr 4|6 ADDRESS CIDR: ADDRESS is in the network CIDR.
in_cidr() {
  local net=${3%/*} n=${3#*/} a
  a=$(ipt_cidr "$1" "$2/$n") || return 1
  [[ ${a%/*} == "$net" ]]
}

# packet_verdict [--forward] DST PROTO DPORT: what the kernel does to a new
# connection to DST (a local process's, or with --forward one a pod's that
# the node routes), from the rules the iptables stand-ins keep. The tables
# at one hook run in priority order (include/uapi/linux/netfilter_ipv4.h:
# NF_IP_PRI_MANGLE -150 before NF_IP_PRI_FILTER 0): local traffic mangle
# OUTPUT, filter OUTPUT, then mangle POSTROUTING; routed traffic mangle
# FORWARD, filter FORWARD, mangle POSTROUTING. In each chain the first rule
# that matches decides: ACCEPT ends that table's chain, DROP and REJECT the
# packet; a chain without a verdict falls to its policy (ACCEPT). Traffic to
# a local address (127.0.0.0/8, ::1, the host's) leaves through lo; the
# connection is NEW. Prints DROP, REJECT or ACCEPT.
packet_verdict() {
  local forward=false fam=4 dir=iptables dst proto port out=eth0 chains c file
  [[ $1 == --forward ]] && { forward=true; shift; }
  dst=$1 proto=$2 port=$3
  [[ $dst == *:* ]] && fam=6 dir=ip6tables
  if ! $forward && { [[ $dst == 127.* || $dst == ::1 ]] || host_has_address "$dst"; }; then out=lo; fi
  chains="mangle/OUTPUT filter/OUTPUT mangle/POSTROUTING"
  $forward && chains="mangle/FORWARD filter/FORWARD mangle/POSTROUTING"
  for c in $chains; do
    file=$FAKE_NODE/$dir/$c
    [[ -f $file ]] || continue
    case $(chain_verdict "$file" "$fam" "$dst" "$proto" "$port" "$out" "$forward") in
      DROP) echo DROP; return ;;
      REJECT) echo REJECT; return ;;
    esac
  done
  echo ACCEPT
}

chain_verdict() { # chain_verdict FILE FAMILY DST PROTO DPORT OUT_IFACE FORWARDED
  local line w
  while read -ra w; do
    local i=2 match=true verdict=""
    while ((i < ${#w[@]})); do
      case ${w[i]} in
        -d) in_cidr "$2" "$3" "${w[i + 1]}" || match=false ;;
        -s) [[ $7 == false ]] && host_has_address "${w[i + 1]%/*}" || match=false ;;
        -o) [[ ${w[i + 1]} == "$6" ]] || match=false ;;
        -i) [[ $7 == true && ${w[i + 1]} != lo ]] || match=false ;;
        -p) [[ ${w[i + 1]} == "$4" ]] || match=false ;;
        --dport) [[ ${w[i + 1]} == "$5" ]] || match=false ;;
        --ctstate) [[ ,${w[i + 1]}, == *,NEW,* ]] || match=false ;;
        -j) verdict=${w[i + 1]} ;;
      esac
      i=$((i + 1))
    done
    if $match; then echo "$verdict"; return; fi
  done <"$1"
}

# What the kernel does to a local process's TCP connection to $1 on port $2
# (default 6443): DROP, REJECT or nothing.
fence_verdict() {
  local v
  v=$(packet_verdict "$1" tcp "${2:-6443}")
  [[ $v == ACCEPT ]] || echo "$v"
}

# --- files on the node -------------------------------------------------------

manifest_file() { echo "$FAKE_ROOT/etc/kubernetes/manifests/$1.yaml"; }
manifest_flag() { sed -n "s/^ *- --$2=//p" "$1" 2>/dev/null | head -n 1; }

# Container paths of a manifest's hostPath mounts (kubeadm mounts each at the
# same path as on the host).
manifest_mounts() { sed -n 's/^ *- mountPath: //p' "$1"; }

# A path as the container sees it, on the fixture's disk.
host_path() { # host_path MANIFEST PATH
  local mount
  while read -r mount; do
    if [[ $2 == "$mount" || $2 == "$mount"/* ]]; then
      echo "$FAKE_ROOT$2"
      return
    fi
  done < <(manifest_mounts "$1")
  echo "$2"
}

kubeconfig_field() { sed -n "s/^ *$2: //p" "$1" 2>/dev/null | head -n 1; }

# The kubeconfig's CA as a file (certificate-authority-data or
# certificate-authority).
kubeconfig_ca() { # kubeconfig_ca KUBECONFIG OUT
  local data file
  data=$(kubeconfig_field "$1" certificate-authority-data)
  if [[ -n $data ]]; then
    base64 -d <<<"$data" >"$2" 2>/dev/null
  else
    file=$(kubeconfig_field "$1" certificate-authority)
    [[ -n $file ]] && cp "$FAKE_ROOT$file" "$2"
  fi
}

# The CN of a kubeconfig's client certificate.
kubeconfig_client_cn() { cached "cn-$1" "$1" "$FAKE_ROOT/var/lib/kubelet/pki/kubelet-client-current.pem" -- kubeconfig_client_cn_now "$1"; }
kubeconfig_client_cn_now() {
  local data file pem=""
  data=$(kubeconfig_field "$1" client-certificate-data)
  if [[ -n $data ]]; then
    pem=$(base64 -d <<<"$data" 2>/dev/null)
  else
    file=$(kubeconfig_field "$1" client-certificate)
    [[ -n $file && -f $FAKE_ROOT$file ]] && pem=$(cat "$FAKE_ROOT$file")
  fi
  [[ -n $pem ]] || return 1
  openssl x509 -noout -subject -nameopt RFC2253 <<<"$pem" 2>/dev/null | sed -n 's/.*CN=\([^,]*\).*/\1/p'
}

# --- systemd's view of kubelet ---------------------------------------------------

unit_state() { local s; read_file s "$FAKE_NODE/systemd/$1.state" || s=inactive; echo "${s:-inactive}"; }
kubelet_active() { local s; read_file s "$FAKE_NODE/systemd/kubelet.state" && [[ $s == active ]]; }

# The files that make up a unit, in the order systemd applies them: the unit
# file, then its drop-ins (a drop-in in /etc masks one of the same name in
# /run, which masks /usr/lib and /lib; lexical order of their names).
unit_sources() {
  local unit=$1 dir file base
  local -A seen=()
  for dir in etc/systemd/system run/systemd/system usr/lib/systemd/system lib/systemd/system; do
    if [[ -f $FAKE_ROOT/$dir/$unit.service ]]; then
      echo "$FAKE_ROOT/$dir/$unit.service"
      break
    fi
  done
  for dir in etc/systemd/system run/systemd/system usr/lib/systemd/system lib/systemd/system; do
    for file in "$FAKE_ROOT/$dir/$unit.service.d"/*.conf; do
      [[ -f $file ]] || continue
      base=${file##*/}
      [[ -n ${seen[$base]:-} ]] && continue
      seen[$base]=$file
    done
  done
  for base in $(printf '%s\n' "${!seen[@]}" | sort); do
    echo "${seen[$base]}"
  done
}

# A variable of an environment file as systemd reads it (systemd.exec(5),
# EnvironmentFile=; src/basic/env-file.c): the last assignment, its double or
# single quotes removed. env_file_set: whether the file assigns it.
env_file_set() { grep -q "^[[:space:]]*$2=" "$1"; }
env_file_var() {
  sed -n "s/^[[:space:]]*$2=//p" "$1" | tail -n 1 | sed -e 's/^"\(.*\)"[[:space:]]*$/\1/' -e "s/^'\\(.*\\)'[[:space:]]*\$/\\1/"
}

# kubelet's command line: the EnvironmentFile= files of its unit and
# drop-ins (an empty assignment resets the list), read in order; ExecStart
# (10-kubeadm.conf) expands $KUBELET_KUBEADM_ARGS, then $KUBELET_EXTRA_ARGS,
# each as the last file that sets it left it.
kubelet_args() {
  local src line files=() file kubeadm_args="" extra_args=""
  while read -r src; do
    while IFS= read -r line; do
      case $line in
        EnvironmentFile=) files=() ;;
        EnvironmentFile=*) files+=("${line#EnvironmentFile=}") ;;
      esac
    done <"$src"
  done < <(unit_sources kubelet)
  for file in "${files[@]}"; do
    file=$FAKE_ROOT${file#-}
    [[ -f $file ]] || continue
    if env_file_set "$file" KUBELET_KUBEADM_ARGS; then kubeadm_args=$(env_file_var "$file" KUBELET_KUBEADM_ARGS); fi
    if env_file_set "$file" KUBELET_EXTRA_ARGS; then extra_args=$(env_file_var "$file" KUBELET_EXTRA_ARGS); fi
  done
  echo "$kubeadm_args $extra_args"
}

# A flag's value, --name=value or --name value as kubelet's flag parser
# (spf13/pflag, flag.go parseLongArg) takes them; the last one wins.
kubelet_flag() { # kubelet_flag NAME [ARGS]
  local arg value="" args=${2-$(kubelet_args)} next=false
  for arg in $args; do
    if $next; then value=$arg next=false; continue; fi
    if [[ $arg == --$1=* ]]; then value=${arg#--"$1"=}; elif [[ $arg == "--$1" ]]; then next=true; fi
  done
  echo "$value"
}

kubelet_node_name() { # kubelet_node_name [ARGS]
  local name
  name=$(kubelet_flag hostname-override "${1-$(kubelet_args)}")
  [[ -n $name ]] || name=$(host_name)
  echo "${name,,}"
}

# --- containers (containerd through the CRI) ----------------------------------
# One table, FAKE_NODE/containers.tsv: id name namespace pod kind created state
# pid hash finished; FAKE_NODE/containers/<id>/ holds its log and view.

declare -A C_NAME=() C_NS=() C_POD=() C_KIND=() C_CREATED=() C_STATE=() C_PID=() C_HASH=() C_FINISHED=() C_LATEST=()
C_IDS=()
C_SEQ=0

ctr_load() {
  local id name ns pod kind created state pid hash finished
  [[ -f $FAKE_NODE/seq ]] && read_file C_SEQ "$FAKE_NODE/seq"
  [[ -f $FAKE_NODE/containers.tsv ]] || return 0
  while IFS=$'\t' read -r id name ns pod kind created state pid hash finished; do
    C_IDS+=("$id")
    C_NAME[$id]=$name C_NS[$id]=$ns C_POD[$id]=$pod C_KIND[$id]=$kind C_CREATED[$id]=$created
    C_STATE[$id]=$state C_PID[$id]=${pid#-} C_HASH[$id]=${hash#-} C_FINISHED[$id]=${finished#-}
    C_LATEST[$pod]=$id
  done <"$FAKE_NODE/containers.tsv"
}

ctr_save() {
  local id
  [[ -n ${FAKE_NODE:-} && -d $FAKE_NODE ]] || return 0
  echo "$C_SEQ" >"$FAKE_NODE/seq"
  for id in "${C_IDS[@]}"; do
    [[ -n ${C_NAME[$id]:-} ]] || continue
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t-%s\t-%s\t-%s\n' "$id" "${C_NAME[$id]}" "${C_NS[$id]}" "${C_POD[$id]}" "${C_KIND[$id]}" \
      "${C_CREATED[$id]}" "${C_STATE[$id]}" "${C_PID[$id]}" "${C_HASH[$id]}" "${C_FINISHED[$id]}"
  done >"$FAKE_NODE/containers.tsv.new"
  mv "$FAKE_NODE/containers.tsv.new" "$FAKE_NODE/containers.tsv"
}

ctr() { echo "$FAKE_NODE/containers/$1"; }

ctr_exited() { C_STATE[$1]=exited; C_FINISHED[$1]=$EPOCHSECONDS; }

ctr_running() {
  [[ ${C_STATE[$1]:-} == running ]] || return 1
  if [[ -n ${C_PID[$1]} ]] && ! kill -0 "${C_PID[$1]}" 2>/dev/null; then
    ctr_exited "$1"
    return 1
  fi
}

ctr_new() { # ctr_new NAME NAMESPACE POD KIND: sets NEW_ID
  local n=$((C_SEQ + 1))
  C_SEQ=$n
  printf -v NEW_ID '%013x' $((((n + 7) * 0x9E3779B97F4A7C15 >> 11) & 0xFFFFFFFFFFFFF | 0x1000000000000))
  mkdir -p "$(ctr "$NEW_ID")"
  date -u +%Y-%m-%dT%H:%M:%S.%NZ >"$(ctr "$NEW_ID")/started"
  C_IDS+=("$NEW_ID")
  C_NAME[$NEW_ID]=$1 C_NS[$NEW_ID]=$2 C_POD[$NEW_ID]=$3 C_KIND[$NEW_ID]=$4 C_CREATED[$NEW_ID]=$n
  C_STATE[$NEW_ID]=running C_PID[$NEW_ID]="" C_HASH[$NEW_ID]="" C_FINISHED[$NEW_ID]=""
  C_LATEST[$3]=$NEW_ID
}

ctr_remove() {
  unset "C_NAME[$1]"
  rm -rf "$(ctr "$1")"
}

# ctr_stop ID [TIMEOUT]: containerd's StopContainer (internal/cri/server/
# container_stop.go, stopContainer): with a timeout > 0 the stop signal
# (SIGTERM), then SIGKILL once TIMEOUT seconds pass; with 0 SIGKILL at once
# ("Kill container"). Without TIMEOUT: kubelet's stop, its grace period
# (5 s here) before the SIGKILL.
ctr_stop() {
  local pid=${C_PID[$1]:-} timeout=${2:-5}
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    if ((timeout > 0)); then
      model_log "containerd: SIGTERM to ${C_NAME[$1]} ($1)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 $((timeout * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    if kill -0 "$pid" 2>/dev/null; then
      model_log "containerd: SIGKILL to ${C_NAME[$1]} ($1)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  [[ ${C_STATE[$1]} == running ]] && ctr_exited "$1"
  return 0
}

# The newest container of a pod, any state.
pod_container() {
  local id=${C_LATEST[$1]:-}
  [[ -n $id && -n ${C_NAME[$id]:-} ]] && echo "$id"
  return 0
}

running_pod() { # running_pod POD: the id of its running container
  local id=${C_LATEST[$1]:-}
  [[ -n $id && -n ${C_NAME[$id]:-} ]] && ctr_running "$id" && echo "$id"
}

# kubelet restarts a container that exited, not more than once a second here.
recently_exited() { [[ -n ${C_FINISHED[$1]:-} ]] && ((EPOCHSECONDS - C_FINISHED[$1] < 1)); }

etcd_spawn() { # etcd_spawn MANIFEST ID
  local manifest=$1 id=$2 arg name value url host args=()
  while read -r arg; do
    name=${arg%%=*} value=${arg#*=}
    [[ $value == /* ]] && value=$(host_path "$manifest" "$value")
    case $name in
      --listen-client-urls | --listen-peer-urls | --listen-metrics-urls)
        for url in ${value//,/ }; do
          host=${url#*://} host=${host%:*}
          if ! host_has_address "$host"; then
            echo "listen tcp $host: bind: cannot assign requested address" >>"$(ctr "$id")/log"
            return 1
          fi
        done
        ;;
    esac
    args+=("$name=$value")
  done < <(sed -n 's/^    - \(--.*\)$/\1/p' "$manifest")
  # The process outlives the stand-in that started it, as a container
  # outlives kubelet; it keeps no fd of the test or of the model's lock open.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done; exec "$@"' \
    etcd "${FAKE_ETCD_DIR:-/usr/bin}/etcd" "${args[@]}" </dev/null >>"$(ctr "$id")/log" 2>&1 &
  C_PID[$id]=$!
}

# --- kubelet's static pods ------------------------------------------------------

kubelet_static_pods() {
  local manifest pod hash id
  local -A wanted=() hashes=() pods=()
  while read -r hash manifest; do hashes[$manifest]=${hash:0:16}; done < <(sha256sum "$FAKE_ROOT"/etc/kubernetes/manifests/*.yaml 2>/dev/null)
  while read -r manifest pod; do pods[$manifest]=$pod; done < <(
    awk 'FNR == 1 { m = 0; done = 0 } done { next } /^metadata:/ { m = 1; next } /^[^ ]/ { m = 0 } m && /^  name: / { print FILENAME, $2; done = 1 }' \
      "$FAKE_ROOT"/etc/kubernetes/manifests/*.yaml 2>/dev/null
  )
  for manifest in "${!pods[@]}"; do
    pod=${pods[$manifest]} hash=${hashes[$manifest]}
    wanted[$pod]=1
    id=$(pod_container "$pod")
    if [[ -n $id ]] && ctr_running "$id"; then
      [[ ${C_HASH[$id]} == "$hash" ]] && continue
      model_log "kubelet: the manifest of $pod changed: recreating it"
      ctr_stop "$id"
    elif [[ -n $id ]] && recently_exited "$id"; then
      continue
    fi
    ctr_new "$pod" kube-system "$pod" static
    id=$NEW_ID
    C_HASH[$id]=$hash
    if [[ $pod == etcd ]] && ! etcd_spawn "$manifest" "$id"; then
      ctr_exited "$id"
    fi
    model_log "kubelet: started $pod ($id)"
  done
  for id in "${C_IDS[@]}"; do
    [[ -n ${C_NAME[$id]:-} && ${C_KIND[$id]} == static ]] || continue
    pod=${C_POD[$id]}
    if [[ -z ${wanted[$pod]:-} ]] && ctr_running "$id"; then
      model_log "kubelet: $pod has no manifest any more: stopping it"
      ctr_stop "$id"
    fi
  done
}

# --- the apiserver ----------------------------------------------------------------

# etcdctl as the apiserver reaches its storage: its own --etcd-* flags.
APISERVER_ETCD=()
cluster_etcdctl() {
  local m
  if ((${#APISERVER_ETCD[@]} == 0)); then
    m=$(manifest_file kube-apiserver)
    [[ -f $m ]] || return 1
    APISERVER_ETCD=(--endpoints "$(manifest_flag "$m" etcd-servers)" --cacert "$FAKE_ROOT$(manifest_flag "$m" etcd-cafile)"
      --cert "$FAKE_ROOT$(manifest_flag "$m" etcd-certfile)" --key "$FAKE_ROOT$(manifest_flag "$m" etcd-keyfile)")
  fi
  ETCDCTL_API=3 /usr/bin/etcdctl "${APISERVER_ETCD[@]}" --dial-timeout=2s --command-timeout=5s "$@"
}

cert_matches_host() { # cert_matches_host CERT HOST
  local how=-checkhost
  [[ $2 =~ ^[0-9.]+$ ]] && how=-checkip
  openssl x509 -in "$1" -noout "$how" "$2" 2>/dev/null | grep -q ' does match '
}

# The apiserver answers only while its etcd does: the model's etcd is the
# local member (the etcd pod), listening on the port of --etcd-servers, and
# the apiserver's client certificate for it must not have expired.
ETCD_ANSWERS=""
apiserver_storage_ok() {
  local m url port cert fd
  if [[ -z $ETCD_ANSWERS ]]; then
    ETCD_ANSWERS=no
    m=$(manifest_file kube-apiserver)
    url=$(manifest_flag "$m" etcd-servers) url=${url%%,*}
    port=${url##*:}
    cert=$FAKE_ROOT$(manifest_flag "$m" etcd-certfile)
    if running_pod etcd >/dev/null && { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      exec {fd}>&-
      [[ $(cached "etcd-client-valid" "$cert" -- openssl x509 -in "$cert" -noout -checkend 0) == *"will not expire"* ]] &&
        ETCD_ANSWERS=yes
    fi
  fi
  [[ $ETCD_ANSWERS == yes ]]
}

# Does the apiserver's serving certificate verify for HOST against the CA
# of --kubeconfig FILE or --cacert FILE?
tls_ok_now() { # tls_ok_now HOW SOURCE HOST CERT
  local ca=$2 ok=""
  if [[ $1 == --kubeconfig ]]; then
    ca=$(mktemp)
    kubeconfig_ca "$2" "$ca"
  fi
  openssl verify -CAfile "$ca" "$4" >/dev/null 2>&1 && cert_matches_host "$4" "$3" && ok=good
  [[ $1 == --kubeconfig ]] && rm -f "$ca"
  echo "$ok"
}

# Can a client reach a ready apiserver at https://HOST:6443? Exit status as
# curl's: 0 ready, 6 cannot resolve HOST, 7 refused / no route, 28 timed out,
# 60 certificate not valid for HOST, 22 not ready. The client verifies the
# certificate when given the CA it trusts: --kubeconfig FILE (its
# certificate-authority-data) or --cacert FILE.
apiserver_check() { # apiserver_check HOST [--kubeconfig FILE | --cacert FILE]
  local name=$1 how=${2:-} src=${3:-} host verdict m cert
  host=$(resolve_host "$name") || return 6
  verdict=$(fence_verdict "$host")
  [[ $verdict == DROP ]] && return 28
  [[ $verdict == REJECT ]] && return 7
  host_has_address "$host" || return 28
  running_pod kube-apiserver >/dev/null || return 7
  m=$(manifest_file kube-apiserver)
  [[ -f $m ]] || return 7
  if [[ -n $how ]]; then
    cert=$FAKE_ROOT$(manifest_flag "$m" tls-cert-file)
    [[ $(cached "tls-$name-$src" "$src" "$cert" -- tls_ok_now "$how" "$src" "$name" "$cert") == good ]] || return 60
  fi
  apiserver_storage_ok || return 22
}

# The apiserver's port (--secure-port, 6443 by default) and whether it
# serves anonymous requests (--anonymous-auth, true by default).
apiserver_port() { local p; p=$(manifest_flag "$(manifest_file kube-apiserver)" secure-port); echo "${p:-6443}"; }
apiserver_anonymous() { [[ $(manifest_flag "$(manifest_file kube-apiserver)" anonymous-auth) != false ]]; }

url_host() { local h=${1#*://}; h=${h%%/*}; h=${h%:*}; h=${h#[}; echo "${h%]}"; }

# The apiserver's objects, read from etcd once per stand-in call
# (REGISTRY[key] = value; keys are the lines that start with /registry/, which
# no stored YAML line does).
declare -A REGISTRY=()
REGISTRY_LOADED=false
registry_load() {
  local line key="" value=""
  $REGISTRY_LOADED && return 0
  REGISTRY_LOADED=true
  while IFS= read -r line; do
    if [[ $line == /registry/* ]]; then
      [[ -n $key ]] && REGISTRY[$key]=${value%$'\n'}
      key=$line value=""
    else
      value+="$line"$'\n'
    fi
  done < <(cluster_etcdctl get --prefix /registry/ 2>/dev/null)
  [[ -n $key ]] && REGISTRY[$key]=${value%$'\n'}
  return 0
}
registry_keys() { # registry_keys PREFIX: sorted
  local key
  registry_load
  for key in "${!REGISTRY[@]}"; do
    [[ $key == "$1"* ]] && echo "$key"
  done | sort
}
cluster_get() { registry_load; [[ -n ${REGISTRY[$1]:-} ]] && printf '%s\n' "${REGISTRY[$1]}"; }
cluster_put() { cluster_etcdctl put "$1" >/dev/null <<<"$2" && REGISTRY[$1]=$2; }

# A Node as the apiserver stores it (the fields the scripts read).
node_yaml() { # node_yaml NAME READY IP...: one InternalIP per IP (dual-stack: two)
  local name=$1 ready=$2 ip
  shift 2
  printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\nstatus:\n  addresses:\n' "$name"
  for ip in "$@"; do printf '  - address: %s\n    type: InternalIP\n' "$ip"; done
  printf '  - address: %s\n    type: Hostname\n  conditions:\n  - status: "%s"\n    type: Ready\n' "$name" "$ready"
}
node_ready() { awk '/^  conditions:/{c=1} c&&/- status:/{gsub(/"/,"",$3); s=$3} c&&/type: Ready/{print s; exit}' <<<"$1"; }
# Every InternalIP, space-separated, as jsonpath prints the matches of a
# filter (k8s.io/client-go/util/jsonpath, jsonpath.go PrintResults).
node_internal_ip() { awk '/- address:/{a=$3} /type: InternalIP/{printf "%s%s", sep, a; sep=" "} END{if (sep) print ""}' <<<"$1"; }

# --- kubelet and controllers against the apiserver ---------------------------------

kubelet_reaches_apiserver() {
  local conf
  conf=$FAKE_ROOT/etc/kubernetes/kubelet.conf
  [[ -f $conf ]] || return 1
  apiserver_check "$(url_host "$(kubeconfig_field "$conf" server)")" --kubeconfig "$conf"
}

# kubelet posts its node's status (and renews its lease). POSTING: the name it
# posts for, if NodeRestriction lets it.
POSTING=""
kubelet_post_status() {
  local args name cn node_ip stored ip ips
  args=$(kubelet_args)
  name=$(kubelet_node_name "$args")
  cn=$(kubeconfig_client_cn "$FAKE_ROOT/etc/kubernetes/kubelet.conf")
  if [[ $cn != "system:node:$name" ]]; then
    model_log "kubelet: nodes \"$name\" is forbidden: node \"${cn#system:node:}\" is not allowed to modify node \"$name\""
    return 0
  fi
  POSTING=$name
  registry_load
  node_ip=$(kubelet_flag node-ip "$args")
  for ip in ${node_ip//,/ }; do
    if ! host_has_address "$ip"; then
      model_log "kubelet: failed to validate nodeIP: node IP: \"$ip\" not found in the host's network interfaces"
      return 0
    fi
  done
  ips=${node_ip:-$(host_ip)} ips=${ips//,/ }
  stored=$(cluster_get "/registry/minions/$name")
  # pkg/kubelet/nodestatus/setters.go, NodeAddress: with
  # --cloud-provider=external a Node that has addresses keeps them ("provider
  # set addresses should take precedence"): the cloud controller manager
  # sets them (ccm_node_addresses).
  if [[ $(kubelet_flag cloud-provider "$args") == external && -n $(node_internal_ip "$stored") ]]; then
    ips=$(node_internal_ip "$stored")
  fi
  if [[ $(node_ready "$stored") != True || $(node_internal_ip "$stored") != "$ips" ]]; then
    # shellcheck disable=SC2086 # one address a word
    cluster_put "/registry/minions/$name" "$(node_yaml "$name" True $ips)"
    model_log "kubelet: node $name Ready on $ips"
  fi
}

# The cloud controller manager's node controller (k8s.io/cloud-provider
# controllers/node/node_controller.go, UpdateNodeStatus: at its start, then
# every --node-status-update-frequency, 5m by default) sets each Node's
# addresses to the cloud's: here the host's IP. It runs as the static pod
# cloud-controller-manager while the apiserver answers.
ccm_node_addresses() {
  local id m period stamp key name ready
  id=$(running_pod cloud-controller-manager) || return 0
  m=$(manifest_file cloud-controller-manager)
  period=$(manifest_flag "$m" node-status-update-frequency)
  period=${period:-5m} period=${period%s}
  [[ $period == *m ]] && period=$((${period%m} * 60))
  stamp=$FAKE_NODE/ccm-$id
  if [[ -f $stamp ]] && ((EPOCHSECONDS - $(cat "$stamp") < period)); then return 0; fi
  echo "$EPOCHSECONDS" >"$stamp"
  registry_load
  for key in $(registry_keys /registry/minions/); do
    name=${key##*/} ready=$(node_ready "${REGISTRY[$key]}")
    [[ $(node_internal_ip "${REGISTRY[$key]}") == "$(host_ip)" ]] && continue
    cluster_put "$key" "$(node_yaml "$name" "${ready:-Unknown}" "$(host_ip)")"
    model_log "cloud-node-controller: node $name addresses set to $(host_ip)"
  done
}

node_lifecycle() { # node_lifecycle POSTING_NAME
  local key name
  running_pod kube-controller-manager >/dev/null || return 0
  registry_load
  for key in $(registry_keys /registry/minions/); do
    name=${key##*/}
    [[ $name == "$1" ]] && continue
    [[ $(node_ready "${REGISTRY[$key]}") == True ]] || continue
    # shellcheck disable=SC2046 # one address a word
    cluster_put "$key" "$(node_yaml "$name" Unknown $(node_internal_ip "${REGISTRY[$key]}"))"
    model_log "node-lifecycle-controller: node $name stopped posting its status: Ready=Unknown"
  done
}

# The spec.template block of a DaemonSet's YAML.
ds_template() { awk '/^  template:/{t=1;print;next} t&&/^(  )?[^ ]/{t=0} t' <<<"$1"; }
ds_first_container() { awk '/^      containers:/{c=1;next} c&&/^        name: /{print $2; exit}' <<<"$1"; }

# Names of the ConfigMaps a pod template refers to (volumes, env valueFrom,
# envFrom).
ds_configmap_refs() {
  awk '
    match($0, /^ *(- )?(configMap|configMapKeyRef|configMapRef):$/) {
      ind = match($0, /[^ -]/); want = 1; next
    }
    want && match($0, /[^ -]/) <= ind { want = 0 }
    want && /^ *name: / { print $2; want = 0 }
  ' <<<"$1" | sort -u
}

# What a new container of a DaemonSet pod starts with: the pod's spec and the
# ConfigMaps it reads, as they are now.
ds_container_view() { # ds_container_view NS TEMPLATE
  local name
  printf '%s\n' "$2"
  for name in $(ds_configmap_refs "$2"); do
    cluster_get "/registry/configmaps/$1/$name"
  done
}

# Is a Deployment's one replica bound to this node? The scheduler is not
# modelled: it is here when the template tolerates the taint kubeadm puts on
# a control plane (node-role.kubernetes.io/control-plane:NoSchedule,
# cmd/kubeadm/app/constants), by key or with operator Exists; elsewhere
# (a worker) otherwise.
deployment_here() {
  awk '/^      tolerations:/{t=1;next} t&&/^      [^ -]/{t=0} t' <<<"$1" |
    grep -qE 'key: node-role.kubernetes.io/control-plane|operator: Exists'
}

kubelet_daemonsets() {
  local key ns name template pod_dir pod id stored kind
  registry_load
  for key in $(registry_keys /registry/daemonsets/) $(registry_keys /registry/deployments/); do
    kind=${key#/registry/} kind=${kind%%/*}
    ns=${key#/registry/"$kind"/} ns=${ns%%/*} name=${key##*/}
    template=$(ds_template "${REGISTRY[$key]}")
    pod=$ns/$name pod_dir=$FAKE_NODE/pods/${ns}_$name
    if [[ $kind == deployments ]]; then
      deployment_here "$template" || continue
      pod=$ns/deployment/$name pod_dir=$FAKE_NODE/pods/${ns}_deployment_$name
    fi
    if read_file stored "$pod_dir/template" && [[ $stored != "$template" ]] &&
      running_pod kube-controller-manager >/dev/null; then
      model_log "${kind%s}-controller: replacing the pod of $pod (template changed)"
      id=$(pod_container "$pod")
      [[ -n $id ]] && ctr_stop "$id"
      rm -rf "$pod_dir"
    fi
    if [[ ! -d $pod_dir ]]; then
      mkdir -p "$pod_dir"
      printf '%s\n' "$template" >"$pod_dir/template"
    fi
    id=$(pod_container "$pod")
    if [[ -n $id ]] && { ctr_running "$id" || recently_exited "$id"; }; then continue; fi
    read_file stored "$pod_dir/template"
    ctr_new "$(ds_first_container "$stored")" "$ns" "$pod" "${kind%s}"
    ds_container_view "$ns" "$stored" >"$(ctr "$NEW_ID")/view"
    model_log "kubelet: started ${C_NAME[$NEW_ID]} of $pod ($NEW_ID)"
  done
}

# What the node's kubelet and the controllers have done by now.
node_sync() {
  POSTING=""
  [[ -n ${FAKE_NODE:-} && -f $FAKE_NODE/host/ip ]] || return 0
  if kubelet_active; then
    kubelet_static_pods
    if kubelet_reaches_apiserver; then
      kubelet_post_status
      [[ -n $POSTING ]] && kubelet_daemonsets
    fi
  fi
  if apiserver_check 127.0.0.1; then
    node_lifecycle "$POSTING"
    ccm_node_addresses
  fi
  return 0
}
