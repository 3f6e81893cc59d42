# shellcheck shell=bash disable=SC2034  # a library: its variables are read by the scripts that source it
# Shared settings and helpers for hack/local-cluster and hack/cluster/*.sh. Source it; do not run it.

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
# shellcheck source=versions.env
. "$CLUSTER_DIR/versions.env"

# The machine's own Go first: Debian's golang-go (1.19) is too old for these modules.
if [[ -z "${GO:-}" ]]; then
    if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || echo go)"; fi
fi
DOCKER="${DOCKER:-/usr/bin/docker}"
ITEMS_CACHE_DIR="${ITEMS_CACHE_DIR:-/var/cache/items-platform}"
# Everything the running cluster writes: certificates, etcd data, containerd and kubelet roots.
STATE_DIR="${ITEMS_CLUSTER_STATE_DIR:-/var/lib/items-local-cluster}"
# Sockets and pidfiles.
RUN_DIR="${ITEMS_CLUSTER_RUN_DIR:-/run/items-local-cluster}"
LOG_DIR="$STATE_DIR/logs"
PKI_DIR="$STATE_DIR/pki"
KUBECONFIG_PATH="$STATE_DIR/admin.kubeconfig"

KUBE_BIN="$ITEMS_CACHE_DIR/kubernetes/$KUBERNETES_VERSION"
ETCD_BIN="$ITEMS_CACHE_DIR/etcd/$ETCD_VERSION"
CRICTL_BIN="$ITEMS_CACHE_DIR/crictl/$CRICTL_VERSION"
COREDNS_BIN="$ITEMS_CACHE_DIR/coredns/$COREDNS_VERSION"

# Networking. Everything lives on a bridge this script creates; nothing listens on or sends to
# the machine's own uplink. The node's address is the bridge's gateway address.
NODE_NAME="items-local"
BRIDGE="itemsbr0"
POD_CIDR="10.244.0.0/24"
NODE_IP="10.244.0.1"
# Locally administered (0x02 bit) and unicast; fixed so the gateway's MAC never changes.
BRIDGE_MAC="02:49:54:0a:f4:01"
SERVICE_CIDR="10.96.0.0/16"
API_SERVICE_IP="10.96.0.1"
DNS_SERVICE_IP="10.96.0.10"
CLUSTER_DOMAIN="cluster.local"
API_PORT=6443
API_URL="https://$NODE_IP:$API_PORT"
CONTAINERD_SOCK="$RUN_DIR/containerd/containerd.sock"

# The CPU cgroup the cluster's daemons share (hack/local-cluster, system_cgroup_up): 1024
# shares (cgroup v2: weight 100) is systemd's default for system.slice.
SYSTEM_CGROUP="items-local-cluster"
SYSTEM_CPU_SHARES=1024
SYSTEM_CPU_WEIGHT=100

# The long-running processes, in start order.
# A registry that has nothing: a pull the cluster was not meant to make fails as a real
# registry answers a tag it does not have (404, "not found"), locally and at once.
EMPTY_REGISTRY="127.0.0.1:5055"
COMPONENTS=(empty-registry etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

say() { printf '%s: %s\n' "${SAY_PREFIX:-local-cluster}" "$*" >&2; }
oneline() { tr '\n' ' '; }
die() { say "error: $*"; exit 1; }

need_root() { [[ $EUID -eq 0 ]] || die "must run as root (it starts kubelet, containerd and changes iptables)"; }

pidfile() { echo "$RUN_DIR/$1.pid"; }

# running NAME: the component's pidfile names a live process.
running() {
    local f pid
    f="$(pidfile "$1")"
    [[ -s "$f" ]] || return 1
    pid="$(cat "$f")"
    kill -0 "$pid" 2>/dev/null
}

kubectl_() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds, or fail after SECONDS.
wait_for() {
    local timeout="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}
