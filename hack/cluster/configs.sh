# shellcheck shell=bash
# Writers for the local cluster's configuration files. Sourced by hack/local-cluster after lib.sh.

write_containerd_config() {
    local dir="$STATE_DIR/containerd"
    mkdir -p "$dir/certs.d/docker.io" "$STATE_DIR/cni/net.d" "$RUN_DIR/containerd"
    # Every image the cluster runs is imported beforehand (hack/local-cluster load). Should a pull
    # happen anyway, docker.io resolves to the empty registry on loopback: "not found", at once.
    cat >"$dir/certs.d/docker.io/hosts.toml" <<TOML
server = "http://$EMPTY_REGISTRY"
[host."http://$EMPTY_REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
    cat >"$dir/config.toml" <<TOML
# containerd for items-local-cluster only: its own root, state and socket, beside any other.
version = 2
root = "$dir/root"
state = "$RUN_DIR/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri.v1alpha2"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # This machine refuses negative oom_score_adj values even to root; without this, every pod
  # sandbox (oom_score_adj -998) fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces live under our state dir, so 'down' finds every one of them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
    # One network: our bridge, addresses from the pod range, no masquerade (pods never leave the
    # machine; see the ITEMS-LOCAL-CLUSTER forward chain).
    cat >"$STATE_DIR/cni/net.d/10-items-local.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "items-local",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE_DIR/cni/ipam"
      }
    },
    {"type": "loopback"}
  ]
}
JSON
}

write_kubelet_config() {
    mkdir -p "$STATE_DIR/kubelet" "$STATE_DIR/pod-logs"
    cat >"$STATE_DIR/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
# No host resolv.conf: pods must never learn the machine's upstream resolvers.
resolvConf: ""
podLogsDir: $STATE_DIR/pod-logs
serializeImagePulls: false
# Images are loaded by hand and cannot be pulled again: never garbage-collect them, never evict.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
rotateCertificates: false
serverTLSBootstrap: false
YAML
}

write_kube_proxy_config() {
    cat >"$STATE_DIR/kube-proxy-config.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $STATE_DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts open only on the bridge address, never on the machine's uplink.
nodePortAddresses: ["$NODE_IP/32"]
# Leave the kernel's conntrack sysctls alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 1s
YAML
}
