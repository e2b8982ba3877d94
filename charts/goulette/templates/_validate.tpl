{{/* Values checks: every contradiction or missing value, reported together by goulette.validateValues. */}}

{{/*
Fail with every problem of the values at once, one line each naming the value and what to set
(rendered by templates/validate.yaml, so that helm template, install and upgrade all check). Each
goulette.validateValues.* helper prints its problems one per line, or nothing.
*/}}
{{- define "goulette.validateValues" -}}
{{- $messages := list -}}
{{- range $check := list "etcd" "tls" "broker" "externalAccess" "prometheusRule" -}}
{{- $output := include (printf "goulette.validateValues.%s" $check) $ -}}
{{- $messages = concat $messages (splitList "\n" $output) -}}
{{- end -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- fail (printf "\nVALUES VALIDATION:\n  - %s" (join "\n  - " $messages)) -}}
{{- end -}}
{{- end -}}

{{/*
etcd: one source only; an external etcd's password and TLS Secret when its options need them; the
StatefulSet's TLS Secret.
*/}}
{{- define "goulette.validateValues.etcd" -}}
{{- $external := .Values.etcd.external -}}
{{- if and .Values.sentinel.embeddedEtcd $external.endpoints }}
sentinel.embeddedEtcd=true and etcd.external.endpoints are exclusive: choose one (unset the endpoints, or embeddedEtcd)
{{- end }}
{{- if and .Values.etcd.tls.enabled (ne (include "goulette.etcd.mode" .) "statefulset") }}
etcd.tls.enabled=true applies to the chart's etcd StatefulSet only: for an external etcd set etcd.external.tls; the embedded sidecar's client port listens on 127.0.0.1
{{- end }}
{{- if and .Values.etcd.tls.enabled (eq (include "goulette.etcd.mode" .) "statefulset") (not .Values.etcd.tls.existingSecret) }}
etcd.tls.enabled=true needs etcd.tls.existingSecret: a Secret with the members' certificate (ca.crt, tls.crt, tls.key; see docs/kubernetes.md)
{{- end }}
{{- if eq (include "goulette.etcd.mode" .) "external" }}
{{- if and $external.username (not $external.existingSecret) (not $external.password) }}
etcd.external.username is set: set etcd.external.password or etcd.external.existingSecret
{{- end }}
{{- if and $external.tls.enabled (not $external.tls.existingSecret) }}
etcd.external.tls.enabled=true needs etcd.external.tls.existingSecret: a Secret with the etcd CA (and a client certificate and key for certificate auth)
{{- end }}
{{- end }}
{{- end -}}

{{/*
TLS: the certificate Secret, and the CA that client certificates are checked against.
*/}}
{{- define "goulette.validateValues.tls" -}}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.existingSecret }}
tls.enabled=true needs tls.existingSecret: a Secret with the certificate, key and CA (see the chart README)
{{- end }}
{{- if and .Values.tls.mutual (not .Values.tls.caFilename) }}
tls.mutual=true needs tls.caFilename: the file in tls.existingSecret holding the CA that signs client certificates
{{- end }}
{{- end }}
{{- end -}}

{{/*
Brokers: acks=all must be satisfiable.
*/}}
{{- define "goulette.validateValues.broker" -}}
{{- $b := .Values.broker -}}
{{- if gt (int $b.minInsyncReplicas) (int $b.replicas) }}
{{ printf "broker.minInsyncReplicas (%d) exceeds broker.replicas (%d): acks=all could never be acknowledged; lower broker.minInsyncReplicas or raise broker.replicas" (int $b.minInsyncReplicas) (int $b.replicas) }}
{{- end }}
{{- end -}}

{{/*
externalAccess: every broker needs an external host and port (see goulette.externalAccess.addresses).
*/}}
{{- define "goulette.validateValues.externalAccess" -}}
{{- $ea := .Values.externalAccess -}}
{{- if $ea.enabled -}}
{{- $svc := $ea.service -}}
{{- $n := int .Values.broker.replicas -}}
{{- $hosts := $ea.advertised.hosts -}}
{{- if eq $svc.type "LoadBalancer" }}
{{- if not $hosts }}{{ $hosts = $svc.loadBalancerIPs }}{{ end }}
{{- if lt (len $hosts) $n }}
{{ printf "externalAccess (LoadBalancer): each broker needs the host it advertises; externalAccess.advertised.hosts (or externalAccess.service.loadBalancerIPs) lists %d, broker.replicas is %d" (len $hosts) $n }}
{{- end }}
{{- else }}
{{- if and (not $hosts) (not $ea.advertised.domain) }}
externalAccess (NodePort): set externalAccess.advertised.hosts (one host per broker) or externalAccess.advertised.domain (one host for all)
{{- end }}
{{- if and $hosts (lt (len $hosts) $n) }}
{{ printf "externalAccess (NodePort): externalAccess.advertised.hosts lists %d hosts, broker.replicas is %d" (len $hosts) $n }}
{{- end }}
{{- if and $svc.nodePorts (lt (len $svc.nodePorts) $n) }}
{{ printf "externalAccess (NodePort): externalAccess.service.nodePorts lists %d ports, broker.replicas is %d" (len $svc.nodePorts) $n }}
{{- end }}
{{- if and (not $svc.nodePorts) (lt (int $ea.advertised.basePort) 1) }}
externalAccess (NodePort): set externalAccess.service.nodePorts (one per broker) or externalAccess.advertised.basePort (broker i gets basePort + i)
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
PrometheusRule: the alerts that disabled and ruleLabels name must exist in rules/goulette-alerts.yaml
(a broken rules file is templates/prometheusrule.yaml's own error).
*/}}
{{- define "goulette.validateValues.prometheusRule" -}}
{{- $pr := .Values.metrics.prometheusRule -}}
{{- $rules := .Files.Get "rules/goulette-alerts.yaml" | fromYaml -}}
{{- if and $pr.enabled $rules.groups -}}
{{- $alerts := list -}}
{{- range $group := $rules.groups -}}
{{- range $rule := $group.rules -}}
{{- $alerts = append $alerts $rule.alert -}}
{{- end -}}
{{- end -}}
{{- range $key := list "disabled" "ruleLabels" -}}
{{- range $name, $_ := get $pr $key }}
{{- if not (has $name $alerts) }}
{{ printf "metrics.prometheusRule.%s: there is no alert %s (alerts: %s)" $key $name (join ", " $alerts) }}
{{- end }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
