{{/* Probes: timings and the HTTP (or, with mutual TLS, TCP) probe on the RPC port. */}}

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
