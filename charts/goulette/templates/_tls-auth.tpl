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
Return the name of the Secret holding every token (auth.existingSecret, or the one the credentials
Job creates).
*/}}
{{- define "goulette.auth.secretName" -}}
{{- default (printf "%s-credentials" (include "goulette.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/*
Return the keys of the credentials Secret, comma-separated: "sentinel", "admin", one
"broker.<pod name>" per broker and one "app.<name>" per auth.applications entry. Each key is a
principal as the servers read a tokens directory (<kind>.<name>).
*/}}
{{- define "goulette.auth.keys" -}}
{{- $keys := list "sentinel" "admin" -}}
{{- $broker := include "goulette.broker.fullname" . -}}
{{- range $i := until (int .Values.broker.replicas) -}}
{{- $keys = append $keys (printf "broker.%s-%d" $broker $i) -}}
{{- end -}}
{{- range .Values.auth.applications -}}
{{- $keys = append $keys (printf "app.%s" .) -}}
{{- end -}}
{{- join "," $keys -}}
{{- end -}}

{{/*
Return the init container that gives a pod its own token and the digests of all tokens
(files/credentials-init.sh), or nothing with auth off.
Usage: {{ include "goulette.credentials.initContainer" (dict "context" $ "ownKey" "sentinel" "securityContext" .Values.sentinel.containerSecurityContext) }}
*/}}
{{- define "goulette.credentials.initContainer" -}}
{{- $ctx := .context -}}
{{- if $ctx.Values.auth.enabled }}
- name: credentials
  image: {{ include "goulette.image" $ctx }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  command: ["/bin/sh", "-c", {{ $ctx.Files.Get "files/credentials-init.sh" | quote }}]
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: OWN_KEY
      value: {{ .ownKey | quote }}
    - name: SECRET_NAME
      value: {{ include "goulette.auth.secretName" $ctx | quote }}
    - name: SOURCE_DIR
      value: /etc/goulette/credentials-source
    - name: TARGET_DIR
      value: /etc/goulette/credentials
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  securityContext:
    {{- toYaml .securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: credentials-source
      mountPath: /etc/goulette/credentials-source
      readOnly: true
    - name: credentials
      mountPath: /etc/goulette/credentials
{{- end }}
{{- end -}}

{{/*
Return the identity env vars of a sentinel or broker container: its token and the digests table from
the init container's files, or --allow-anonymous with auth off.
*/}}
{{- define "goulette.credentials.env" -}}
{{- if .Values.auth.enabled }}
# Written by the credentials init container: this pod's own token, and digests of every token.
- name: GOULETTE_TOKEN_FILE
  value: /etc/goulette/credentials/token
- name: GOULETTE_TOKENS_FILE
  value: /etc/goulette/credentials/tokens
{{- else }}
# auth.enabled=false: an open cluster must be asked for explicitly.
- name: GOULETTE_ALLOW_ANONYMOUS
  value: "true"
{{- end }}
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
