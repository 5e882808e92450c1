#!/usr/bin/env bash
# make-fixture.sh ROOT OLD_IP API_VERSION [NODE_NAME]
# A kubeadm control plane's files as kubeadm writes them for a node on OLD_IP:
# manifests with probes, kubeconfigs, certificates made with openssl that carry
# OLD_IP in their SANs, and the cluster's ClusterConfiguration (kubeadm.k8s.io
# API_VERSION, v1beta3 or v1beta4) as lifeboat caches it. Also the stand-in
# cluster state the fake kubectl and etcdctl read (ROOT/../cluster).
set -euo pipefail
root=$1 ip=$2 api=$3 node=${4:-k8s-master}
k=$root/etc/kubernetes
cluster=$(dirname "$root")/cluster
mkdir -p "$k/manifests" "$k/pki/etcd" "$k/lifeboat" "$root/var/lib/etcd/member/snap" "$cluster"
echo "etcd data of $node" >"$root/var/lib/etcd/member/snap/db"

ca() { # ca DIR NAME
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$1/ca.key" -out "$1/ca.crt" 2>/dev/null
}
cert() { # cert CA_DIR NAME CN SANS
  local dir
  dir=$(dirname "$1/$2")
  mkdir -p "$dir"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$3" -keyout "$1/$2.key" -out "$1/$2.csr" 2>/dev/null
  openssl x509 -req -in "$1/$2.csr" -CA "$4/ca.crt" -CAkey "$4/ca.key" -CAcreateserial -days 365 \
    -extfile <(printf 'subjectAltName=%s\n' "$5") -out "$1/$2.crt" 2>/dev/null
  rm -f "$1/$2.csr"
}
ca "$k/pki" kubernetes
ca "$k/pki/etcd" etcd-ca
cert "$k/pki" apiserver kube-apiserver "$k/pki" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$node,IP:10.96.0.1,IP:$ip"
cert "$k/pki" apiserver-etcd-client kube-apiserver-etcd-client "$k/pki/etcd" "DNS:$node"
cert "$k/pki" etcd/server "$node" "$k/pki/etcd" "DNS:$node,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
cert "$k/pki" etcd/peer "$node" "$k/pki/etcd" "DNS:$node,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"

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
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --etcd-servers=https://127.0.0.1:2379
    - --secure-port=6443
    - --service-cluster-ip-range=10.96.0.0/12
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
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
  hostNetwork: true
YAML
cat >"$k/manifests/etcd.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://$ip:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://$ip:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://$ip:2380
    - --initial-cluster=$node=https://$ip:2380
    - --listen-client-urls=https://127.0.0.1:2379,https://$ip:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://$ip:2380
    - --name=$node
    image: registry.k8s.io/etcd:3.5.15-0
    name: etcd
  hostNetwork: true
YAML
cat >"$k/manifests/kube-controller-manager.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --bind-address=127.0.0.1
    - --kubeconfig=/etc/kubernetes/controller-manager.conf
    image: registry.k8s.io/kube-controller-manager:v1.31.2
    name: kube-controller-manager
YAML
cat >"$k/manifests/kube-scheduler.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-scheduler
    - --bind-address=127.0.0.1
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    image: registry.k8s.io/kube-scheduler:v1.31.2
    name: kube-scheduler
YAML
for conf in admin super-admin kubelet controller-manager scheduler; do
  user=kubernetes-admin
  [[ $conf == kubelet ]] && user=system:node:$node
  cat >"$k/$conf.conf" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi0tLS0t
    server: https://$ip:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
kind: Config
users:
- name: $user
  user:
    client-certificate-data: LS0tLS1CRUdJTi0tLS0t
YAML
done

if [[ $api == v1beta4 ]]; then
  extra_args='  extraArgs:
  - name: authorization-mode
    value: Node,RBAC'
else
  extra_args='  extraArgs:
    authorization-mode: Node,RBAC'
fi
cat >"$k/lifeboat/cluster-configuration.yaml" <<YAML
apiServer:
  certSANs:
  - $ip
  - k8s.example.com
$extra_args
apiVersion: kubeadm.k8s.io/$api
caCertificateValidityPeriod: 87600h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: $ip:6443
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
YAML
[[ $api == v1beta3 ]] && sed -i '/^caCertificateValidityPeriod/d' "$k/lifeboat/cluster-configuration.yaml"

# What the stand-in kubectl and etcdctl serve.
cat >"$cluster/kube-proxy.yaml" <<YAML
apiVersion: v1
data:
  kubeconfig.conf: |-
    apiVersion: v1
    clusters:
    - cluster:
        server: https://$ip:6443
      name: default
kind: ConfigMap
metadata:
  name: kube-proxy
  namespace: kube-system
YAML
cat >"$cluster/cluster-info.yaml" <<YAML
apiVersion: v1
data:
  kubeconfig: |
    apiVersion: v1
    clusters:
    - cluster:
        server: https://$ip:6443
      name: ""
kind: ConfigMap
metadata:
  name: cluster-info
  namespace: kube-public
YAML
echo "8e9e05c52164694d, started, $node, https://$ip:2380, https://$ip:2379, false" >"$cluster/etcd-members"
