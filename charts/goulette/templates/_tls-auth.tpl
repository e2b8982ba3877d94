{{/* TLS and authentication: the scheme, the Secrets and the TLS env vars. */}}

{{/*
Return the scheme of Goulette's RPC port: https when TLS is on.
*/}}
{{- define "goulette.scheme" -}}
{{- if .Values.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/*
Return the name of the Secret holding the RPC TLS certificate (goulette.validateValues requires it
when tls.enabled).
*/}}
{{- define "goulette.tls.secretName" -}}
{{- .Values.tls.existingSecret -}}
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
  value: /etc/goulette/tls/{{ .Values.tls.caFilename }}
{{- end }}
{{- end }}
{{- end -}}
