{{/* vim: set filetype=mustache: */}}

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
Return the standard labels of one component.
Usage: {{ include "goulette.labels" (dict "context" $ "component" "sentinel") }}
*/}}
{{- define "goulette.labels" -}}
{{- $ctx := .context -}}
helm.sh/chart: {{ include "goulette.chart" $ctx }}
{{ include "goulette.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: goulette
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Return the selector labels of one component: only labels that never change over upgrades
(a StatefulSet's selector is immutable).
Usage: {{ include "goulette.selectorLabels" (dict "context" $ "component" "broker") }}
*/}}
{{- define "goulette.selectorLabels" -}}
app.kubernetes.io/name: {{ include "goulette.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/*
Return the broker pods' label selector as a string ("k=v,k=v"), for the sentinel's pod watcher.
*/}}
{{- define "goulette.broker.selectorString" -}}
{{- $labels := include "goulette.selectorLabels" (dict "context" . "component" "broker") | fromYaml -}}
{{- $pairs := list -}}
{{- range $k := keys $labels | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (get $labels $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
Return the common annotations (commonAnnotations), or nothing.
*/}}
{{- define "goulette.annotations" -}}
{{- with .Values.commonAnnotations }}
{{- toYaml . }}
{{- end }}
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
Return the scheme of Goulette's RPC port: https when TLS is on.
*/}}
{{- define "goulette.scheme" -}}
{{- if .Values.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/*
Return the Goulette image reference (registry/repository:tag or @digest; tag defaults to appVersion).
*/}}
{{- define "goulette.image" -}}
{{- include "goulette.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/*
Return the etcd image reference.
*/}}
{{- define "goulette.etcd.image" -}}
{{- include "goulette.imageRef" (dict "image" .Values.etcd.image "default" "") -}}
{{- end -}}

{{/*
Return an image reference from {registry, repository, tag, digest}.
*/}}
{{- define "goulette.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry -}}
{{- $repo = printf "%s/%s" .image.registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .default .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
Return the image pull secrets block, or nothing.
*/}}
{{- define "goulette.imagePullSecrets" -}}
{{- $secrets := concat .Values.image.pullSecrets .Values.etcd.image.pullSecrets | uniq -}}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Return how sentinels reach etcd: "embedded" (a sidecar in every sentinel pod), "external"
(etcd.external.endpoints) or "statefulset" (the chart's etcd StatefulSet). Fails on a contradiction.
*/}}
{{- define "goulette.etcd.mode" -}}
{{- if and .Values.sentinel.embeddedEtcd .Values.etcd.external.endpoints -}}
{{- fail "sentinel.embeddedEtcd=true and etcd.external.endpoints are exclusive: choose one" -}}
{{- else if .Values.sentinel.embeddedEtcd -}}
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

{{/*
Return a probe's timing fields from {initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold, successThreshold}.
*/}}
{{- define "goulette.probeTimings" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
successThreshold: {{ .successThreshold }}
{{- end -}}

{{/*
Return an HTTP probe on Goulette's RPC port (it also serves /healthz and /readyz).
Usage: {{ include "goulette.httpProbe" (dict "context" $ "path" "/readyz" "probe" .Values.sentinel.readinessProbe) }}
*/}}
{{- define "goulette.httpProbe" -}}
{{- if and .context.Values.tls.enabled .context.Values.tls.mutual -}}
# Mutual TLS: the kubelet has no client certificate, so only the port can be checked.
tcpSocket:
  port: rpc
{{- else -}}
httpGet:
  path: {{ .path }}
  port: rpc
  scheme: {{ ternary "HTTPS" "HTTP" .context.Values.tls.enabled }}
{{- end }}
{{ include "goulette.probeTimings" .probe }}
{{- end -}}

{{/*
Return the pod affinity block of one component: the user's affinity, or a soft/hard anti-affinity
preset spreading the component's pods over nodes.
Usage: {{ include "goulette.affinity" (dict "context" $ "component" "sentinel" "values" .Values.sentinel) }}
*/}}
{{- define "goulette.affinity" -}}
{{- if .values.affinity -}}
{{- toYaml .values.affinity -}}
{{- else if eq .values.podAntiAffinityPreset "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "goulette.selectorLabels" (dict "context" .context "component" .component) | nindent 10 }}
{{- else if eq .values.podAntiAffinityPreset "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "goulette.selectorLabels" (dict "context" .context "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/*
Return the topologySpreadConstraints of one component: the user's list, or a zone spread preset.
Usage: {{ include "goulette.topologySpread" (dict "context" $ "component" "sentinel" "values" .Values.sentinel) }}
*/}}
{{- define "goulette.topologySpread" -}}
{{- if .values.topologySpreadConstraints -}}
{{- toYaml .values.topologySpreadConstraints -}}
{{- else if .values.zoneSpread.enabled -}}
- maxSkew: {{ .values.zoneSpread.maxSkew }}
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: {{ .values.zoneSpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "goulette.selectorLabels" (dict "context" .context "component" .component) | nindent 6 }}
{{- end -}}
{{- end -}}

{{/*
Return the name of the Secret holding the RPC TLS certificate (required when tls.enabled).
*/}}
{{- define "goulette.tls.secretName" -}}
{{- required "tls.enabled=true needs tls.existingSecret: a Secret with the certificate, key and CA (see the chart README)" .Values.tls.existingSecret -}}
{{- end -}}

{{/*
Return the name of the Secret holding the auth token.
*/}}
{{- define "goulette.auth.secretName" -}}
{{- default (printf "%s-auth" (include "goulette.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/*
Return the name of the Secret holding the external etcd password.
*/}}
{{- define "goulette.etcd.external.secretName" -}}
{{- default (printf "%s-etcd-auth" (include "goulette.fullname" .)) .Values.etcd.external.existingSecret -}}
{{- end -}}

{{/*
Return the env vars for the TLS flags (same file layout in sentinel and broker pods).
*/}}
{{- define "goulette.tls.env" -}}
{{- if .Values.tls.enabled }}
- name: GOULETTE_TLS_CERT
  value: /etc/goulette/tls/{{ .Values.tls.certFilename }}
- name: GOULETTE_TLS_KEY
  value: /etc/goulette/tls/{{ .Values.tls.keyFilename }}
{{- if .Values.tls.caFilename }}
# Sentinels and brokers dial each other over https: make Node trust the (usually private) CA.
- name: NODE_EXTRA_CA_CERTS
  value: /etc/goulette/tls/{{ .Values.tls.caFilename }}
{{- end }}
{{- if .Values.tls.mutual }}
# --tls-ca makes the server require client certificates signed by this CA.
- name: GOULETTE_TLS_CA
  value: /etc/goulette/tls/{{ required "tls.mutual=true needs tls.caFilename" .Values.tls.caFilename }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Return the standard volumes of a Goulette pod: /tmp, the config file, the TLS Secret.
Usage: {{ include "goulette.volumes" (dict "context" $ "configMap" "name") }}
*/}}
{{- define "goulette.volumes" -}}
- name: tmp
  emptyDir: {}
- name: config
  configMap:
    name: {{ .configMap }}
{{- if .context.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "goulette.tls.secretName" .context }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/*
Return the standard volume mounts of a Goulette container.
*/}}
{{- define "goulette.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: config
  mountPath: /etc/goulette/config
  readOnly: true
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/goulette/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Return the external address (host:port) of every broker, comma-separated in pod order (externalAccess).
LoadBalancer: advertised.hosts[i] (or service.loadBalancerIPs[i]) and service.port. NodePort:
advertised.hosts[i] (or advertised.domain) and service.nodePorts[i] (or advertised.basePort + i).
Fails with the value to set when the values do not give every broker an address.
*/}}
{{- define "goulette.externalAccess.addresses" -}}
{{- $ea := .Values.externalAccess -}}
{{- $svc := $ea.service -}}
{{- $n := int .Values.broker.replicas -}}
{{- $hosts := $ea.advertised.hosts -}}
{{- $addresses := list -}}
{{- if eq $svc.type "LoadBalancer" -}}
{{- if not $hosts -}}{{- $hosts = $svc.loadBalancerIPs -}}{{- end -}}
{{- if lt (len $hosts) $n -}}
{{- fail (printf "externalAccess (LoadBalancer): each broker needs the host it advertises; externalAccess.advertised.hosts (or externalAccess.service.loadBalancerIPs) lists %d, broker.replicas is %d" (len $hosts) $n) -}}
{{- end -}}
{{- range $i := until $n -}}
{{- $addresses = append $addresses (printf "%s:%d" (index $hosts $i) (int $svc.port)) -}}
{{- end -}}
{{- else -}}
{{- if and (not $hosts) (not $ea.advertised.domain) -}}
{{- fail "externalAccess (NodePort): set externalAccess.advertised.hosts (one host per broker) or externalAccess.advertised.domain (one host for all)" -}}
{{- end -}}
{{- if and $hosts (lt (len $hosts) $n) -}}
{{- fail (printf "externalAccess (NodePort): externalAccess.advertised.hosts lists %d hosts, broker.replicas is %d" (len $hosts) $n) -}}
{{- end -}}
{{- if and $svc.nodePorts (lt (len $svc.nodePorts) $n) -}}
{{- fail (printf "externalAccess (NodePort): externalAccess.service.nodePorts lists %d ports, broker.replicas is %d" (len $svc.nodePorts) $n) -}}
{{- end -}}
{{- if and (not $svc.nodePorts) (lt (int $ea.advertised.basePort) 1) -}}
{{- fail "externalAccess (NodePort): set externalAccess.service.nodePorts (one per broker) or externalAccess.advertised.basePort (broker i gets basePort + i)" -}}
{{- end -}}
{{- range $i := until $n -}}
{{- $host := $ea.advertised.domain -}}
{{- if $hosts -}}{{- $host = index $hosts $i -}}{{- end -}}
{{- $port := add (int $ea.advertised.basePort) $i -}}
{{- if $svc.nodePorts -}}{{- $port = index $svc.nodePorts $i -}}{{- end -}}
{{- $addresses = append $addresses (printf "%s:%d" $host (int $port)) -}}
{{- end -}}
{{- end -}}
{{- join "," $addresses -}}
{{- end -}}

{{/*
Return the brokers' GOULETTE_ADVERTISE_LISTENERS: listener@<pod>=<external address> for every pod.
*/}}
{{- define "goulette.externalAccess.listeners" -}}
{{- $name := include "goulette.broker.fullname" . -}}
{{- $entries := list -}}
{{- range $i, $address := splitList "," (include "goulette.externalAccess.addresses" .) -}}
{{- $entries = append $entries (printf "%s@%s-%d=%s" $.Values.externalAccess.listener $name $i $address) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/*
Return the sentinels' GOULETTE_LISTENER_HOSTS: listener=<host> for each of externalAccess.sentinel.hosts.
*/}}
{{- define "goulette.externalAccess.listenerHosts" -}}
{{- $entries := list -}}
{{- range .Values.externalAccess.sentinel.hosts -}}
{{- $entries = append $entries (printf "%s=%s" $.Values.externalAccess.listener .) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/*
Compile all warnings into one message printed by NOTES.txt.
*/}}
{{- define "goulette.warnings" -}}
{{- $mode := include "goulette.etcd.mode" . -}}
{{- $warnings := list -}}
{{- if eq $mode "embedded" -}}
{{- $warnings = append $warnings "sentinel.embeddedEtcd=true: etcd runs as a sidecar of every sentinel (dev mode). Sentinel scaling then changes etcd membership, which this chart does not do for you: keep sentinel.replicas fixed after install and use the etcd StatefulSet or an external etcd in production." -}}
{{- if not .Values.etcd.persistence.enabled -}}
{{- $warnings = append $warnings "etcd.persistence.enabled=false with embedded etcd: a restarted sentinel pod loses its etcd member's data; with more than one sentinel it cannot rejoin. Use it with sentinel.replicas=1 only." -}}
{{- end -}}
{{- end -}}
{{- if and (eq $mode "statefulset") (not .Values.etcd.persistence.enabled) -}}
{{- $warnings = append $warnings "etcd.persistence.enabled=false: etcd keeps the control-plane state (operation log, topics) in emptyDir volumes; losing a majority of etcd pods loses it." -}}
{{- end -}}
{{- if and (ne $mode "external") (eq (mod (int .Values.etcd.replicas) 2) 0) (eq $mode "statefulset") -}}
{{- $warnings = append $warnings (printf "etcd.replicas=%d is even: it tolerates no more failures than %d members; use an odd number." (int .Values.etcd.replicas) (sub (int .Values.etcd.replicas) 1)) -}}
{{- end -}}
{{- if and (eq $mode "embedded") (gt (int .Values.sentinel.replicas) 1) (eq (mod (int .Values.sentinel.replicas) 2) 0) -}}
{{- $warnings = append $warnings (printf "sentinel.replicas=%d is even while sentinels carry the etcd members: use an odd number." (int .Values.sentinel.replicas)) -}}
{{- end -}}
{{- if eq $mode "external" -}}
{{- range .Values.etcd.external.endpoints -}}
{{- if and (hasPrefix "http://" .) (not $.Values.etcd.external.tls.enabled) -}}
{{- $warnings = append $warnings (printf "external etcd endpoint %s is plain HTTP: control-plane traffic is unencrypted." .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not .Values.tls.enabled -}}
{{- $warnings = append $warnings "tls.enabled=false: sentinel and broker RPC (and message payloads) travel unencrypted inside the cluster." -}}
{{- else if .Values.tls.mutual -}}
{{- $warnings = append $warnings "tls.mutual=true: every client (other sentinels forwarding to the leader, brokers, Prometheus, the CLI) must present a certificate signed by the CA, and probes only check that the port is open." -}}
{{- end -}}
{{- if not .Values.auth.enabled -}}
{{- $warnings = append $warnings "auth.enabled=false: anyone who can reach the Services can produce, consume and call admin RPCs." -}}
{{- end -}}
{{- if and .Values.externalAccess.enabled (not (and .Values.auth.enabled .Values.tls.enabled)) -}}
{{- $warnings = append $warnings (printf "externalAccess.enabled=true with auth.enabled=%t and tls.enabled=%t: the brokers and sentinels are reachable from outside the cluster; turn both on unless that network is trusted." .Values.auth.enabled .Values.tls.enabled) -}}
{{- end -}}
{{- if not .Values.broker.persistence.enabled -}}
{{- $warnings = append $warnings "broker.persistence.enabled=false: broker logs live in emptyDir volumes and are lost when a pod is rescheduled." -}}
{{- end -}}
{{- if lt (int .Values.sentinel.replicas) 2 -}}
{{- $warnings = append $warnings "sentinel.replicas=1: the control plane has no standby leader." -}}
{{- end -}}
{{- if lt (int .Values.broker.replicas) 3 -}}
{{- $warnings = append $warnings (printf "broker.replicas=%d: topics asking for 3 replicas per partition cannot be placed." (int .Values.broker.replicas)) -}}
{{- end -}}
{{- range $warnings }}
  - {{ . }}
{{- end }}
{{- end -}}

{{/*
Return one volumeClaimTemplate.
Usage: {{ include "goulette.pvc" (dict "context" $ "name" "data" "component" "broker" "persistence" .Values.broker.persistence) }}
*/}}
{{- define "goulette.pvc" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: {{ .name }}
    labels:
      {{- include "goulette.selectorLabels" (dict "context" .context "component" .component) | nindent 6 }}
    {{- with .persistence.annotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    accessModes:
      {{- toYaml .persistence.accessModes | nindent 6 }}
    {{- if .persistence.storageClass }}
    {{- if eq "-" .persistence.storageClass }}
    storageClassName: ""
    {{- else }}
    storageClassName: {{ .persistence.storageClass | quote }}
    {{- end }}
    {{- end }}
    resources:
      requests:
        storage: {{ .persistence.size | quote }}
{{- end -}}

{{/*
Return the GOULETTE_RPC_* variables of an rpcLimits value (sentinel.rpcLimits or broker.rpcLimits).
*/}}
{{- define "goulette.rpcLimits.env" -}}
- name: GOULETTE_RPC_MAX_REQUEST_BYTES
  value: {{ .maxRequestBytes | int64 | quote }}
- name: GOULETTE_RPC_MAX_CONNECTIONS
  value: {{ .maxConnections | int64 | quote }}
- name: GOULETTE_RPC_MAX_CONCURRENT_STREAMS
  value: {{ .maxConcurrentStreams | int64 | quote }}
- name: GOULETTE_RPC_HEADERS_TIMEOUT
  value: {{ .headersTimeout | int64 | quote }}
- name: GOULETTE_RPC_REQUEST_TIMEOUT
  value: {{ .requestTimeout | int64 | quote }}
- name: GOULETTE_RPC_KEEPALIVE_TIMEOUT
  value: {{ .keepAliveTimeout | int64 | quote }}
- name: GOULETTE_RPC_IDLE_TIMEOUT
  value: {{ .idleTimeout | int64 | quote }}
{{- end }}

{{/*
Return the GOULETTE_CORS_* variables of a cors value (sentinel.cors or broker.cors); none while no
origin is allowed, so that pods stay as they were with CORS off.
*/}}
{{- define "goulette.cors.env" -}}
{{- if .allowedOrigins }}
- name: GOULETTE_CORS_ALLOWED_ORIGINS
  value: {{ join "," .allowedOrigins | quote }}
- name: GOULETTE_CORS_MAX_AGE
  value: {{ .maxAge | int64 | quote }}
{{- end }}
{{- end }}
