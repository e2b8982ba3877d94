{{/* etcd: where it comes from, its endpoints and its container (StatefulSet or embedded sidecar). */}}

{{/*
Return how sentinels reach etcd: "embedded" (a sidecar in every sentinel pod), "external"
(etcd.external.endpoints) or "statefulset" (the chart's etcd StatefulSet). Both set is refused by
goulette.validateValues.
*/}}
{{- define "goulette.etcd.mode" -}}
{{- if .Values.sentinel.embeddedEtcd -}}
embedded
{{- else if .Values.etcd.external.endpoints -}}
external
{{- else -}}
statefulset
{{- end -}}
{{- end -}}

{{/*
Return the etcd client URLs sentinels use, comma-separated.
*/}}
{{- define "goulette.etcd.endpoints" -}}
{{- $mode := include "goulette.etcd.mode" . -}}
{{- if eq $mode "embedded" -}}
{{- printf "http://127.0.0.1:%d" (int .Values.etcd.clientPort) -}}
{{- else if eq $mode "external" -}}
{{- join "," .Values.etcd.external.endpoints -}}
{{- else -}}
{{- $urls := list -}}
{{- $name := include "goulette.etcd.fullname" . -}}
{{- $host := printf "%s.%s" (include "goulette.etcd.headless" .) (include "goulette.svcDomain" .) -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "%s://%s-%d.%s:%d" (include "goulette.etcd.scheme" $) $name $i $host (int $.Values.etcd.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- end -}}

{{/*
Return the scheme of the chart's etcd StatefulSet (client and peer URLs): https with etcd.tls.enabled.
The embedded sidecar always speaks plain HTTP: its client port listens on 127.0.0.1 only.
*/}}
{{- define "goulette.etcd.scheme" -}}
{{- if and .Values.etcd.tls.enabled (eq (include "goulette.etcd.mode" .) "statefulset") -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/*
Return the Secret of the sentinels' etcd TLS files (CA, client certificate and key), or nothing:
etcd.external.tls.existingSecret for an external etcd, etcd.tls.clientExistingSecret (default:
etcd.tls.existingSecret) for the chart's StatefulSet with etcd.tls.enabled.
*/}}
{{- define "goulette.etcd.clientTlsSecret" -}}
{{- $mode := include "goulette.etcd.mode" . -}}
{{- if and (eq $mode "external") .Values.etcd.external.tls.enabled -}}
{{- .Values.etcd.external.tls.existingSecret -}}
{{- else if and (eq $mode "statefulset") .Values.etcd.tls.enabled -}}
{{- default .Values.etcd.tls.existingSecret .Values.etcd.tls.clientExistingSecret -}}
{{- end -}}
{{- end -}}

{{/*
Return etcd's --initial-cluster: "<pod>=http://<pod>.<headless>.<ns>.svc.<domain>:<peerPort>,..." for the
pods of one StatefulSet (the etcd StatefulSet, or the sentinels in embedded mode).
Usage: {{ include "goulette.etcd.initialCluster" (dict "context" $ "statefulset" "x" "headless" "x-headless" "replicas" 3) }}
*/}}
{{- define "goulette.etcd.initialCluster" -}}
{{- $ctx := .context -}}
{{- $members := list -}}
{{- range $i := until (int .replicas) -}}
{{- $pod := printf "%s-%d" $.statefulset $i -}}
{{- $members = append $members (printf "%s=%s://%s.%s.%s:%d" $pod (include "goulette.etcd.scheme" $ctx) $pod $.headless (include "goulette.svcDomain" $ctx) (int $ctx.Values.etcd.peerPort)) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}

{{/*
Return the etcd container: used by the etcd StatefulSet and, in embedded mode, as the sentinel
pods' sidecar. Members are named after their pods and find each other through the headless Service.
The sidecar's client port listens on 127.0.0.1; with etcd.tls.enabled the StatefulSet's members serve
TLS and require client certificates on both ports.
Usage: {{ include "goulette.etcd.container" (dict "context" $ "statefulset" "x" "headless" "x-headless" "replicas" 3) }}
*/}}
{{- define "goulette.etcd.container" -}}
{{- $ctx := .context -}}
{{- $etcd := $ctx.Values.etcd -}}
{{- $embedded := eq (include "goulette.etcd.mode" $ctx) "embedded" -}}
{{- $tls := eq (include "goulette.etcd.scheme" $ctx) "https" -}}
{{- $scheme := include "goulette.etcd.scheme" $ctx -}}
{{- $host := printf "$(POD_NAME).%s.%s" .headless (include "goulette.svcDomain" $ctx) -}}
- name: etcd
  image: {{ include "goulette.etcd.image" $ctx }}
  imagePullPolicy: {{ $etcd.image.pullPolicy }}
  command: ["/usr/local/bin/etcd"]
  args:
    - --name=$(POD_NAME)
    - --data-dir=/var/run/etcd/default.etcd
    {{- if $embedded }}
    # Only the sentinel next to it uses this member: its client port stays inside the pod.
    - --listen-client-urls=http://127.0.0.1:{{ $etcd.clientPort }}
    - --advertise-client-urls=http://127.0.0.1:{{ $etcd.clientPort }}
    {{- else }}
    - --listen-client-urls={{ $scheme }}://0.0.0.0:{{ $etcd.clientPort }}
    - --advertise-client-urls={{ $scheme }}://{{ $host }}:{{ $etcd.clientPort }}
    {{- end }}
    - --listen-peer-urls={{ $scheme }}://0.0.0.0:{{ $etcd.peerPort }}
    - --initial-advertise-peer-urls={{ $scheme }}://{{ $host }}:{{ $etcd.peerPort }}
    # /health and /metrics without TLS or data: what the probes use.
    - --listen-metrics-urls=http://0.0.0.0:{{ $etcd.metricsPort }}
    {{- if $tls }}
    # Clients (sentinels) and peers need a certificate signed by the CA.
    - --cert-file=/etc/etcd/tls/tls.crt
    - --key-file=/etc/etcd/tls/tls.key
    - --trusted-ca-file=/etc/etcd/tls/ca.crt
    - --client-cert-auth
    - --peer-cert-file=/etc/etcd/tls/tls.crt
    - --peer-key-file=/etc/etcd/tls/tls.key
    - --peer-trusted-ca-file=/etc/etcd/tls/ca.crt
    - --peer-client-cert-auth
    {{- end }}
    - --initial-cluster={{ include "goulette.etcd.initialCluster" . }}
    - --initial-cluster-state=new
    - --initial-cluster-token={{ default (printf "%s-etcd" (include "goulette.fullname" $ctx)) $etcd.initialClusterToken }}
    - --auto-compaction-mode={{ $etcd.autoCompactionMode }}
    - --auto-compaction-retention={{ $etcd.autoCompactionRetention }}
    - --quota-backend-bytes={{ int64 $etcd.quotaBackendBytes }}
    - --log-level={{ $etcd.logLevel }}
    - --logger=zap
    {{- range $etcd.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    # So that `kubectl exec ... -- etcdctl ...` talks to this member without flags.
    - name: ETCDCTL_ENDPOINTS
      value: {{ $scheme }}://127.0.0.1:{{ $etcd.clientPort }}
    {{- if $tls }}
    - name: ETCDCTL_CACERT
      value: /etc/etcd/tls/ca.crt
    - name: ETCDCTL_CERT
      value: /etc/etcd/tls/tls.crt
    - name: ETCDCTL_KEY
      value: /etc/etcd/tls/tls.key
    {{- end }}
    {{- with $etcd.extraEnvVars }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if not $embedded }}
    - name: etcd-client
      containerPort: {{ $etcd.clientPort }}
      protocol: TCP
    {{- end }}
    - name: etcd-peer
      containerPort: {{ $etcd.peerPort }}
      protocol: TCP
    - name: etcd-metrics
      containerPort: {{ $etcd.metricsPort }}
      protocol: TCP
  {{- if $etcd.livenessProbe.enabled }}
  # serializable: answers without a leader, so losing quorum does not restart every member.
  livenessProbe:
    httpGet:
      path: /health?serializable=true
      port: etcd-metrics
    {{- include "goulette.probeTimings" $etcd.livenessProbe | nindent 4 }}
  {{- end }}
  {{- if $etcd.readinessProbe.enabled }}
  readinessProbe:
    httpGet:
      path: /health
      port: etcd-metrics
    {{- include "goulette.probeTimings" $etcd.readinessProbe | nindent 4 }}
  {{- end }}
  {{- with $etcd.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $etcd.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: etcd-data
      mountPath: /var/run/etcd
    - name: etcd-tmp
      mountPath: /tmp
    {{- if $tls }}
    - name: etcd-server-tls
      mountPath: /etc/etcd/tls
      readOnly: true
    {{- end }}
{{- end -}}
