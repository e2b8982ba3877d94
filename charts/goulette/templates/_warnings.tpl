{{/* Warnings printed by NOTES.txt about risky but valid values. */}}

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
{{- $warnings = append $warnings "auth.enabled=false: sentinels and brokers run with --allow-anonymous: anyone who can reach their ports can produce, consume, delete topics and act as a broker or a sentinel." -}}
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
{{- if and (lt (int .Values.broker.minInsyncReplicas) 2) (ge (int .Values.broker.replicas) 2) -}}
{{- $warnings = append $warnings (printf "broker.minInsyncReplicas=%d: a leader whose followers fell out of sync acknowledges acks=all alone, and losing its disk loses those messages; use 2 with 3 replicas." (int .Values.broker.minInsyncReplicas)) -}}
{{- end -}}
{{- range $warnings }}
  - {{ . }}
{{- end }}
{{- end -}}
