#!/usr/bin/env bash
# Generate the local cluster's certificates and kubeconfigs with openssl (idempotent: files that
# exist are kept). Called by hack/local-cluster up; safe to run alone.
#
# One CA signs everything: the apiserver's serving cert, the kubelet's serving cert, and one client
# cert per user (admin, controller-manager, scheduler, kubelet, kube-proxy, apiserver->kubelet).
# Service-account tokens are signed with their own RSA key pair.
set -euo pipefail
# shellcheck disable=SC2034  # read by say() in lib.sh
SAY_PREFIX="cluster/certs"
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DAYS=3650
mkdir -p "$PKI_DIR"
chmod 700 "$PKI_DIR"
cd "$PKI_DIR"

key() { [[ -f "$1.key" ]] || openssl genrsa -out "$1.key" 2048 2>/dev/null; }

if [[ ! -f ca.crt ]]; then
    key ca
    openssl req -x509 -new -key ca.key -subj "/CN=items-local-cluster-ca" -days "$DAYS" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt 2>/dev/null
    say "created CA $PKI_DIR/ca.crt"
fi

# sign NAME SUBJECT USAGE [SANS]: a certificate NAME.crt for NAME.key, signed by the CA.
sign() {
    local name="$1" subject="$2" usage="$3" sans="${4:-}" ext
    [[ -f "$name.crt" ]] && return 0
    key "$name"
    ext="$(mktemp)"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [[ -n "$sans" ]] && echo "subjectAltName=$sans"
    } >"$ext"
    openssl req -new -key "$name.key" -subj "$subject" 2>/dev/null \
        | openssl x509 -req -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" \
            -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$ext"
    say "created $name.crt ($subject)"
}

sign apiserver "/CN=kube-apiserver" serverAuth \
    "IP:$NODE_IP,IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
sign kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
sign admin "/O=system:masters/CN=items-local-admin" clientAuth
sign controller-manager "/CN=system:kube-controller-manager" clientAuth
sign scheduler "/CN=system:kube-scheduler" clientAuth
sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
sign kube-proxy "/CN=system:kube-proxy" clientAuth

if [[ ! -f sa.pub ]]; then
    key sa
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    say "created service-account key pair sa.key/sa.pub"
fi

# kubeconfig USER: $STATE_DIR/USER.kubeconfig, using USER.crt against the apiserver.
kubeconfig() {
    local user="$1" file="$STATE_DIR/$1.kubeconfig"
    cat >"$file.tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: items-local
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$user.crt")
    client-key-data: $(base64 -w0 "$user.key")
contexts:
- name: items-local
  context:
    cluster: items-local
    user: $user
current-context: items-local
KUBECONFIG
    chmod 600 "$file.tmp"
    mv "$file.tmp" "$file"
}
for u in admin controller-manager scheduler kubelet kube-proxy; do
    kubeconfig "$u"
done
say "certificates in $PKI_DIR, kubeconfigs in $STATE_DIR/*.kubeconfig"
