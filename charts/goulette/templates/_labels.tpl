{{/* Labels, selectors and common annotations. */}}

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
