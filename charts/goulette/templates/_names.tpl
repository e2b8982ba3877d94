{{/* Names: chart, release and object names, the namespace, its DNS suffix and the service account. */}}

{{/*
Return the chart name (or nameOverride), cut to 63 characters (a DNS label).
*/}}
{{- define "goulette.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Return the fully qualified app name: release-chart unless the release name already contains the
chart name. Cut to 43 characters so that "<fullname>-sentinel-headless" and the StatefulSets'
controller-revision-hash labels stay within 63.
*/}}
{{- define "goulette.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Return the chart label value: name-version.
*/}}
{{- define "goulette.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Return the namespace objects are created in.
*/}}
{{- define "goulette.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Return object names. Component names are the fullname plus a suffix; Services that give pods their
stable DNS names end in "-headless".
*/}}
{{- define "goulette.sentinel.fullname" -}}
{{- printf "%s-sentinel" (include "goulette.fullname" .) -}}
{{- end -}}
{{- define "goulette.sentinel.headless" -}}
{{- printf "%s-sentinel-headless" (include "goulette.fullname" .) -}}
{{- end -}}
{{- define "goulette.broker.fullname" -}}
{{- printf "%s-broker" (include "goulette.fullname" .) -}}
{{- end -}}
{{- define "goulette.broker.headless" -}}
{{- printf "%s-broker-headless" (include "goulette.fullname" .) -}}
{{- end -}}
{{- define "goulette.etcd.fullname" -}}
{{- printf "%s-etcd" (include "goulette.fullname" .) -}}
{{- end -}}
{{- define "goulette.etcd.headless" -}}
{{- printf "%s-etcd-headless" (include "goulette.fullname" .) -}}
{{- end -}}

{{/*
Return the service account name.
*/}}
{{- define "goulette.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "goulette.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Return the DNS suffix of Services in this release's namespace: "<ns>.svc.<clusterDomain>".
*/}}
{{- define "goulette.svcDomain" -}}
{{- printf "%s.svc.%s" (include "goulette.namespace" .) .Values.clusterDomain -}}
{{- end -}}

{{/*
Return the label key that lets a pod call the RPC ports under NetworkPolicies ("<fullname>-client").
*/}}
{{- define "goulette.networkPolicy.clientLabel" -}}
{{- printf "%s-client" (include "goulette.fullname" .) -}}
{{- end -}}
