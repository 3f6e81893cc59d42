{{/* Base name of every object: "<release>-operator" unless overridden. */}}
{{- define "items.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "items.name" -}}
{{- default "items-operator" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels never change after the first install (a Deployment selector is immutable). */}}
{{- define "items.selectorLabels" -}}
app.kubernetes.io/name: {{ include "items.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "items.labels" -}}
{{ include "items.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: items-platform
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "items.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "items.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image: digest wins over tag; the tag defaults to appVersion. */}}
{{- define "items.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces the operator serves, as a JSON list (empty when allNamespaces). */}}
{{- define "items.watchNamespaces" -}}
{{- if .Values.allNamespaces -}}
[]
{{- else if .Values.watchNamespaces -}}
{{- .Values.watchNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* PromQL matcher limiting series to the served namespaces. */}}
{{- define "items.namespaceMatcher" -}}
{{- if .Values.allNamespaces -}}
namespace=~".+"
{{- else -}}
{{- $namespaces := include "items.watchNamespaces" . | fromJsonArray -}}
namespace=~"{{ join "|" $namespaces }}"
{{- end -}}
{{- end -}}

{{/* "true" when the enabled monitoring objects are to be rendered: Helm knows
monitoring.coreos.com/v1, or monitoring.ifApiMissing says render; `fail` stops the render with
the way out, `skip` leaves them out (NOTES.txt says so). Never a silent skip by default. */}}
{{- define "items.monitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true
{{- else if eq .Values.monitoring.ifApiMissing "render" -}}true
{{- else if eq .Values.monitoring.ifApiMissing "fail" -}}
{{- fail "monitoring is enabled but Helm does not know monitoring.coreos.com/v1 (no Prometheus Operator?). Install it, or pass --api-versions monitoring.coreos.com/v1 to helm template, or set monitoring.ifApiMissing=render (or skip)" -}}
{{- end -}}
{{- end -}}

{{/* Where the optional ItemService goes: its own setting, else the first served namespace. */}}
{{- define "items.itemServiceNamespace" -}}
{{- if .Values.itemService.namespace -}}
{{- .Values.itemService.namespace -}}
{{- else if and .Values.watchNamespaces (not .Values.allNamespaces) -}}
{{- first .Values.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "items.itemServiceSecretName" -}}
{{- if .Values.itemService.database.secretName -}}
{{- .Values.itemService.database.secretName -}}
{{- else if .Values.itemService.database.url -}}
{{- printf "%s-db" .Values.itemService.name -}}
{{- else -}}
{{- fail "itemService.database: set secretName (an existing Secret) or url (the chart creates the Secret)" -}}
{{- end -}}
{{- end -}}
