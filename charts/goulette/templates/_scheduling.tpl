{{/* Scheduling: anti-affinity and zone spread presets. */}}

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
