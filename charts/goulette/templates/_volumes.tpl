{{/* Volumes, mounts and volumeClaimTemplates of Goulette pods. */}}

{{/*
Return the standard volumes of a Goulette pod: /tmp, the config file, the TLS Secret, the credentials.
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
{{- if .context.Values.auth.enabled }}
# Every token: mounted only into the credentials init container.
- name: credentials-source
  secret:
    secretName: {{ include "goulette.auth.secretName" .context }}
    defaultMode: 0440
# This pod's own token and the digests table, in memory.
- name: credentials
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
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
{{- if .Values.auth.enabled }}
- name: credentials
  mountPath: /etc/goulette/credentials
  readOnly: true
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
