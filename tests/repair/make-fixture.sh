#!/usr/bin/env bash
# make-fixture.sh DIR OLD_IP [options]
# A kubeadm control plane's disk, as `kubeadm init` (v1.31) leaves it on a
# node whose IP was OLD_IP, in DIR/root; the cluster's objects in its real etcd
# data (DIR/root/var/lib/etcd), loaded by a real etcd over TLS; the etcd ports
# in DIR/ports ("CLIENT PEER METRICS").
#   --node NAME          the node's name (k8s-master)
#   --api VERSION        kubeadm.k8s.io VERSION of the stored ClusterConfiguration (v1beta4)
#   --endpoint HOST      controlPlaneEndpoint host: the old IP (default) or a DNS
#                        name, which /etc/hosts maps to the old IP
#   --node-ip            kubelet pinned with --node-ip=OLD_IP in kubeadm-flags.env
#                        and the extra flags file (/etc/default/kubelet, or
#                        /etc/sysconfig/kubelet with --rpm)
#   --rpm                the packages as on a RHEL-family node: the extra flags
#                        file is /etc/sysconfig/kubelet (kubernetes/release
#                        cmd/krel/templates/latest/kubelet/kubelet.spec installs
#                        kubelet.env there for rpms, in /etc/default for debs),
#                        and 10-kubeadm.conf's EnvironmentFile= names it
#   --cni LIST           cilium,tigera,flannel: CNI settings naming the old IP
#   --dual-stack         service subnet 10.96.0.0/12,fd00::/108, the node's IPv6
#                        address (2600:1f18:1234:5600::10) and the IPv6 service
#                        address (fd00::1) among the SANs, as kubeadm makes them
#                        from certSANs, serverCertSANs and peerCertSANs
#   --kubelet-cert file  kubelet.conf as after kubelet's client certificate
#                        rotation: user default-auth, the certificate in
#                        /var/lib/kubelet/pki/kubelet-client-current.pem
# Objects a test put in DIR/objects beforehand (files named
# RESOURCE_NAMESPACE_NAME, as below) are loaded too.
# Certificates are made with openssl as kubeadm makes them (names, SANs and
# usages of cmd/kubeadm/app/phases/certs/certlist.go), with EC keys for speed.
set -euo pipefail
dir=$1 ip=$2
shift 2
node=k8s-master api=v1beta4 endpoint="" node_ip=false cni="" kubelet_cert=embedded extra_flags=/etc/default/kubelet
service_subnet=10.96.0.0/12 api_v6="" etcd_v6="" cert_sans_v6=""
while (($#)); do
  case $1 in
    --node) node=$2; shift ;;
    --api) api=$2; shift ;;
    --endpoint) endpoint=$2; shift ;;
    --node-ip) node_ip=true ;;
    --rpm) extra_flags=/etc/sysconfig/kubelet ;;
    --cni) cni=$2; shift ;;
    --kubelet-cert) kubelet_cert=$2; shift ;;
    --dual-stack)
      service_subnet=10.96.0.0/12,fd00::/108 api_v6=,IP:fd00::1,IP:2600:1f18:1234:5600::10
      etcd_v6=,IP:2600:1f18:1234:5600::10 cert_sans_v6=$'\n  - fd00::1\n  - 2600:1f18:1234:5600::10'
      ;;
    *) echo "make-fixture: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
endpoint=${endpoint:-$ip}
root=$dir/root
k=$root/etc/kubernetes
pki=$k/pki
lookalike=${ip}0
mkdir -p "$k/manifests" "$pki/etcd" "$root/var/lib/etcd" "$root/var/lib/kubelet/pki" "$root${extra_flags%/*}" \
  "$root/usr/lib/systemd/system/kubelet.service.d" "$dir/objects"
chmod 700 "$root/var/lib/etcd"

read -r client_port peer_port metrics_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
echo "$client_port $peer_port $metrics_port" >"$dir/ports"

# --- certificates ----------------------------------------------------------------
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca BASE CN
  key "$pki/$1.key"
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -out "$pki/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" 2>/dev/null
}
# cert BASE CA_BASE SUBJECT USAGES [SANS]: signed for 365 days.
cert() {
  key "$pki/$1.key"
  openssl req -new -key "$pki/$1.key" -subj "$3" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -set_serial "0x$(openssl rand -hex 8)" -days 365 \
    -extfile <(
      printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nbasicConstraints=critical,CA:FALSE\n' "$4"
      [[ -z ${5:-} ]] || printf 'subjectAltName=%s\n' "$5"
    ) -out "$pki/$1.crt" 2>/dev/null
  rm -f "$pki/$1.csr"
}
san_of() { [[ $1 =~ ^[0-9.]+$ ]] && echo "IP:$1" || echo "DNS:$1"; }

ca ca kubernetes
ca front-proxy-ca front-proxy-ca
ca etcd/ca etcd-ca
cert apiserver ca /CN=kube-apiserver serverAuth \
  "DNS:$node,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:$ip,$(san_of "$endpoint"),DNS:k8s.example.com$api_v6"
cert apiserver-kubelet-client ca "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth
cert front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
cert etcd/server etcd/ca "/CN=$node" serverAuth,clientAuth "DNS:$node,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:::1$etcd_v6"
cert etcd/peer etcd/ca "/CN=$node" serverAuth,clientAuth "DNS:$node,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:::1$etcd_v6"
cert etcd/healthcheck-client etcd/ca /CN=kube-etcd-healthcheck-client clientAuth
cert apiserver-etcd-client etcd/ca /CN=kube-apiserver-etcd-client clientAuth
key "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

# --- kubeconfigs --------------------------------------------------------------------
b64() { base64 -w0 <"$1"; }
kubeconfig() { # kubeconfig FILE SERVER USER CERT_BASE
  local user_block
  if [[ -n ${4:-} ]]; then
    user_block="    client-certificate-data: $(b64 "$pki/$4.crt")
    client-key-data: $(b64 "$pki/$4.key")"
  else
    user_block="    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem"
  fi
  cat >"$k/$1" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b64 "$pki/ca.crt")
    server: $2
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $3
  name: $3@kubernetes
current-context: $3@kubernetes
kind: Config
preferences: {}
users:
- name: $3
  user:
$user_block
YAML
}
cert admin ca "/O=kubeadm:cluster-admins/CN=kubernetes-admin" clientAuth
cert super-admin ca "/O=system:masters/CN=kubernetes-super-admin" clientAuth
cert controller-manager ca /CN=system:kube-controller-manager clientAuth
cert scheduler ca /CN=system:kube-scheduler clientAuth
cert kubelet ca "/O=system:nodes/CN=system:node:$node" clientAuth
kubeconfig admin.conf "https://$endpoint:6443" kubernetes-admin admin
kubeconfig super-admin.conf "https://$endpoint:6443" kubernetes-super-admin super-admin
kubeconfig controller-manager.conf "https://$ip:6443" system:kube-controller-manager controller-manager
kubeconfig scheduler.conf "https://$ip:6443" system:kube-scheduler scheduler
if [[ $kubelet_cert == file ]]; then
  cat "$pki/kubelet.crt" "$pki/kubelet.key" >"$root/var/lib/kubelet/pki/kubelet-client-$(date +%Y-%m-%d-%H-%M-%S).pem"
  ln -sf "$(basename "$root"/var/lib/kubelet/pki/kubelet-client-2*.pem)" "$root/var/lib/kubelet/pki/kubelet-client-current.pem"
  kubeconfig kubelet.conf "https://$endpoint:6443" default-auth
else
  kubeconfig kubelet.conf "https://$endpoint:6443" "system:node:$node" kubelet
fi
rm -f "$pki"/{admin,super-admin,controller-manager,scheduler,kubelet}.{crt,key}
if [[ $endpoint != "$ip" ]]; then
  printf '127.0.0.1 localhost\n%s %s\n' "$ip" "$endpoint" >"$root/etc/hosts"
else
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
fi

# The root file system as an Ubuntu cloud image mounts it (fstab(5)); a test
# adds a data volume's mount (etcd_volume, tests/repair/helpers.bash).
printf 'LABEL=cloudimg-rootfs\t/\text4\tdiscard,commit=30,errors=remount-ro\t0 1\n' >"$root/etc/fstab"

# --- static pod manifests (cmd/kubeadm/app/phases/controlplane/manifests.go, phases/etcd/local.go)
cat >"$k/manifests/etcd.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://$ip:$client_port
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://$ip:$client_port
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --experimental-initial-corrupt-check=true
    - --experimental-watch-progress-notify-interval=5s
    - --initial-advertise-peer-urls=https://$ip:$peer_port
    - --initial-cluster=$node=https://$ip:$peer_port
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:$client_port,https://$ip:$client_port
    - --listen-metrics-urls=http://127.0.0.1:$metrics_port
    - --listen-peer-urls=https://$ip:$peer_port
    - --name=$node
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.15-0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      httpGet:
        host: 127.0.0.1
        path: /livez
        port: $metrics_port
        scheme: HTTP
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {}
YAML
cat >"$k/manifests/kube-apiserver.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: $ip:6443
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=$ip
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:$client_port
    - --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt
    - --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key
    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
    - --proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt
    - --proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key
    - --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
    - --service-cluster-ip-range=$service_subnet
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.31.2
    livenessProbe:
      httpGet:
        host: $ip
        path: /livez
        port: 6443
        scheme: HTTPS
    name: kube-apiserver
    readinessProbe:
      httpGet:
        host: $ip
        path: /readyz
        port: 6443
        scheme: HTTPS
    startupProbe:
      httpGet:
        host: $ip
        path: /livez
        port: 6443
        scheme: HTTPS
    volumeMounts:
    - mountPath: /etc/ssl/certs
      name: ca-certs
      readOnly: true
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/ssl/certs
      type: DirectoryOrCreate
    name: ca-certs
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
status: {}
# upstream resolver $lookalike
YAML
for component in kube-controller-manager kube-scheduler; do
  short=${component#kube-}
  cat >"$k/manifests/$component.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: $component
    tier: control-plane
  name: $component
  namespace: kube-system
spec:
  containers:
  - command:
    - $component
    - --authentication-kubeconfig=/etc/kubernetes/$short.conf
    - --bind-address=127.0.0.1
    - --kubeconfig=/etc/kubernetes/$short.conf
    - --leader-elect=true
    image: registry.k8s.io/$component:v1.31.2
    name: $component
    volumeMounts:
    - mountPath: /etc/kubernetes/$short.conf
      name: kubeconfig
      readOnly: true
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/$short.conf
      type: FileOrCreate
    name: kubeconfig
status: {}
YAML
done

# --- kubelet (kubernetes/release packages; phases/kubelet/flags.go) -------------
cat >"$root/usr/lib/systemd/system/kubelet.service" <<'UNIT'
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
cat >"$root/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" <<'UNIT'
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
sed -i "s#^EnvironmentFile=-/etc/default/kubelet\$#EnvironmentFile=-$extra_flags#" "$root/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
# The package's unit pins ConditionPathExists=/var/lib/kubelet/config.yaml
# in some versions; kubeadm writes that file at init.
sed -i 's/^After=network-online.target$/&\nConditionPathExists=\/var\/lib\/kubelet\/config.yaml/' "$root/usr/lib/systemd/system/kubelet.service"
cat >"$root/var/lib/kubelet/config.yaml" <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
healthzBindAddress: 127.0.0.1
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
YAML
flags="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"
$node_ip && flags+=" --node-ip=$ip"
flags+=" --pod-infra-container-image=registry.k8s.io/pause:3.10"
printf 'KUBELET_KUBEADM_ARGS="%s"\n' "$flags" >"$root/var/lib/kubelet/kubeadm-flags.env"
if $node_ip; then
  printf 'KUBELET_EXTRA_ARGS="--node-ip=%s"\n' "$ip" >"$root$extra_flags"
else
  printf 'KUBELET_EXTRA_ARGS=\n' >"$root$extra_flags"
fi

# --- the cluster's objects, as the apiserver stores them under /registry/ -----------
if [[ $api == v1beta4 ]]; then
  extra_args='  extraArgs:
  - name: authorization-mode
    value: Node,RBAC'
else
  extra_args='  extraArgs:
    authorization-mode: Node,RBAC'
fi
cluster_configuration="apiServer:
  certSANs:
  - $ip
  - k8s.example.com$cert_sans_v6
$extra_args
apiVersion: kubeadm.k8s.io/$api
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: $endpoint:6443
controllerManager: {}
dns: {}
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: $service_subnet
scheduler: {}"
indent() { sed 's/^/    /'; }
configmap() { # configmap NS NAME DATA_YAML
  printf 'apiVersion: v1\ndata:\n%s\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n' "$3" "$2" "$1" \
    >"$dir/objects/configmaps_$1_$2"
}
configmap kube-system kubeadm-config "  ClusterConfiguration: |
$(indent <<<"$cluster_configuration")"
configmap kube-system kube-proxy "  config.conf: |-
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    bindAddress: 0.0.0.0
    clientConnection:
      kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
    clusterCIDR: 10.244.0.0/16
    kind: KubeProxyConfiguration
  kubeconfig.conf: |-
    apiVersion: v1
    kind: Config
    clusters:
    - cluster:
        certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        server: https://$endpoint:6443
      name: default"
configmap kube-public cluster-info "  kubeconfig: |
    apiVersion: v1
    clusters:
    - cluster:
        certificate-authority-data: $(b64 "$pki/ca.crt")
        server: https://$endpoint:6443
      name: \"\"
    contexts: null
    current-context: \"\"
    kind: Config
    preferences: {}
    users: null"
configmap kube-system coredns "  Corefile: |
    .:53 {
        hosts {
          $lookalike upstream.example
          fallthrough
        }
        kubernetes cluster.local in-addr.arpa ip6.arpa
        forward . /etc/resolv.conf
    }"
daemonset() { # daemonset NS NAME CONTAINER ENV_YAML VOLUMES_YAML
  cat >"$dir/objects/daemonsets_$1_$2" <<YAML
apiVersion: apps/v1
kind: DaemonSet
metadata:
  labels:
    k8s-app: $2
  name: $2
  namespace: $1
spec:
  selector:
    matchLabels:
      k8s-app: $2
  template:
    metadata:
      labels:
        k8s-app: $2
    spec:
      containers:
      - env:
$4
        image: registry.example/$3:v1
        name: $3
      hostNetwork: true
$5
YAML
}
daemonset kube-system kube-proxy kube-proxy "        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName" "      volumes:
      - configMap:
          name: kube-proxy
        name: kube-proxy"
for c in ${cni//,/ }; do
  case $c in
    cilium)
      configmap kube-system cilium-config "  cluster-name: default
  k8s-service-host: $ip
  k8s-service-port: \"6443\""
      daemonset kube-system cilium cilium-agent "        - name: KUBERNETES_SERVICE_HOST
          valueFrom:
            configMapKeyRef:
              key: k8s-service-host
              name: cilium-config
              optional: true" ""
      ;;
    tigera)
      configmap tigera-operator kubernetes-services-endpoint "  KUBERNETES_SERVICE_HOST: $ip
  KUBERNETES_SERVICE_PORT: \"6443\""
      daemonset calico-system calico-node calico-node "        - name: KUBERNETES_SERVICE_HOST
          value: $ip
        - name: KUBERNETES_SERVICE_PORT
          value: \"6443\"" ""
      # The operator reads that ConfigMap through envFrom and tolerates
      # every taint (projectcalico/calico manifests/tigera-operator.yaml).
      cat >"$dir/objects/deployments_tigera-operator_tigera-operator" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tigera-operator
  namespace: tigera-operator
spec:
  replicas: 1
  selector:
    matchLabels:
      name: tigera-operator
  template:
    metadata:
      labels:
        name: tigera-operator
    spec:
      containers:
      - envFrom:
        - configMapRef:
            name: kubernetes-services-endpoint
            optional: true
        image: quay.io/tigera/operator:v1.36.2
        name: tigera-operator
      hostNetwork: true
      tolerations:
      - effect: NoExecute
        operator: Exists
      - effect: NoSchedule
        operator: Exists
YAML
      ;;
    flannel)
      daemonset kube-flannel kube-flannel-ds kube-flannel "        - name: KUBERNETES_SERVICE_HOST
          value: $ip
        - name: KUBERNETES_SERVICE_PORT
          value: \"6443\"" ""
      ;;
    *) echo "make-fixture: unknown CNI $c" >&2; exit 2 ;;
  esac
done
cat >"$dir/objects/minions__$node" <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
status:
  addresses:
  - address: $ip
    type: InternalIP
  - address: $node
    type: Hostname
  conditions:
  - status: "True"
    type: Ready
YAML

# The member's data: a real etcd on loopback, advertising the old address.
etcd_log=$dir/etcd-fixture.log
"${FAKE_ETCD_DIR:-/usr/bin}/etcd" --name "$node" --data-dir "$root/var/lib/etcd" \
  --listen-client-urls "https://127.0.0.1:$client_port" --advertise-client-urls "https://$ip:$client_port" \
  --listen-peer-urls "https://127.0.0.1:$peer_port" --initial-advertise-peer-urls "https://$ip:$peer_port" \
  --initial-cluster "$node=https://$ip:$peer_port" \
  --cert-file "$pki/etcd/server.crt" --key-file "$pki/etcd/server.key" --client-cert-auth --trusted-ca-file "$pki/etcd/ca.crt" \
  --peer-cert-file "$pki/etcd/peer.crt" --peer-key-file "$pki/etcd/peer.key" --peer-client-cert-auth --peer-trusted-ca-file "$pki/etcd/ca.crt" \
  </dev/null >"$etcd_log" 2>&1 3>&- &
etcd_pid=$!
stop_etcd() { kill "$etcd_pid" 2>/dev/null; wait "$etcd_pid" 2>/dev/null || true; }
trap stop_etcd EXIT
etcdctl() {
  ETCDCTL_API=3 /usr/bin/etcdctl --endpoints "https://127.0.0.1:$client_port" --cacert "$pki/etcd/ca.crt" \
    --cert "$pki/apiserver-etcd-client.crt" --key "$pki/apiserver-etcd-client.key" "$@"
}
for _ in $(seq 1 100); do
  etcdctl endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
etcdctl endpoint health >/dev/null 2>&1 || { cat "$etcd_log" >&2; exit 1; }
for object in "$dir"/objects/*; do
  IFS=_ read -r resource namespace name <<<"${object##*/}"
  if [[ -z $namespace ]]; then key=/registry/$resource/$name; else key=/registry/$resource/$namespace/$name; fi
  etcdctl put "$key" <"$object" >/dev/null
done
stop_etcd
trap - EXIT
