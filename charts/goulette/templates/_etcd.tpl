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
{{- $urls = append $urls (printf "http://%s-%d.%s:%d" $name $i $host (int $.Values.etcd.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
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
{{- $members = append $members (printf "%s=http://%s.%s.%s:%d" $pod $pod $.headless (include "goulette.svcDomain" $ctx) (int $ctx.Values.etcd.peerPort)) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}

{{/*
Return the etcd container: used by the etcd StatefulSet and, in embedded mode, as the sentinel
pods' sidecar. Members are named after their pods and find each other through the headless Service.
Usage: {{ include "goulette.etcd.container" (dict "context" $ "statefulset" "x" "headless" "x-headless" "replicas" 3) }}
*/}}
{{- define "goulette.etcd.container" -}}
{{- $ctx := .context -}}
{{- $etcd := $ctx.Values.etcd -}}
{{- $host := printf "$(POD_NAME).%s.%s" .headless (include "goulette.svcDomain" $ctx) -}}
- name: etcd
  image: {{ include "goulette.etcd.image" $ctx }}
  imagePullPolicy: {{ $etcd.image.pullPolicy }}
  command: ["/usr/local/bin/etcd"]
  args:
    - --name=$(POD_NAME)
    - --data-dir=/var/run/etcd/default.etcd
    - --listen-client-urls=http://0.0.0.0:{{ $etcd.clientPort }}
    - --advertise-client-urls=http://{{ $host }}:{{ $etcd.clientPort }}
    - --listen-peer-urls=http://0.0.0.0:{{ $etcd.peerPort }}
    - --initial-advertise-peer-urls=http://{{ $host }}:{{ $etcd.peerPort }}
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
      value: http://127.0.0.1:{{ $etcd.clientPort }}
    {{- with $etcd.extraEnvVars }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: etcd-client
      containerPort: {{ $etcd.clientPort }}
      protocol: TCP
    - name: etcd-peer
      containerPort: {{ $etcd.peerPort }}
      protocol: TCP
  {{- if $etcd.livenessProbe.enabled }}
  # serializable: answers without a leader, so losing quorum does not restart every member.
  livenessProbe:
    httpGet:
      path: /health?serializable=true
      port: etcd-client
    {{- include "goulette.probeTimings" $etcd.livenessProbe | nindent 4 }}
  {{- end }}
  {{- if $etcd.readinessProbe.enabled }}
  readinessProbe:
    httpGet:
      path: /health
      port: etcd-client
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
{{- end -}}
