{{/* Image references and pull secrets. */}}

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
