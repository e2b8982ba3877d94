{{/* RPC server env vars: request limits and CORS. */}}

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
