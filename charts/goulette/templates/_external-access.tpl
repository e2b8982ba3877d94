{{/* externalAccess: the addresses and listeners brokers and sentinels advertise outside the cluster. */}}

{{/*
Return the external address (host:port) of every broker, comma-separated in pod order (externalAccess).
LoadBalancer: advertised.hosts[i] (or service.loadBalancerIPs[i]) and service.port. NodePort:
advertised.hosts[i] (or advertised.domain) and service.nodePorts[i] (or advertised.basePort + i).
Values that leave a broker without an address are refused by goulette.validateValues; here they only
shorten the list.
*/}}
{{- define "goulette.externalAccess.addresses" -}}
{{- $ea := .Values.externalAccess -}}
{{- $svc := $ea.service -}}
{{- $n := int .Values.broker.replicas -}}
{{- $hosts := $ea.advertised.hosts -}}
{{- $addresses := list -}}
{{- if eq $svc.type "LoadBalancer" -}}
{{- if not $hosts -}}{{- $hosts = $svc.loadBalancerIPs -}}{{- end -}}
{{- range $i := until (min $n (len $hosts) | int) -}}
{{- $addresses = append $addresses (printf "%s:%d" (index $hosts $i) (int $svc.port)) -}}
{{- end -}}
{{- else -}}
{{- $count := $n -}}
{{- if $hosts -}}{{- $count = min $count (len $hosts) | int -}}{{- end -}}
{{- if $svc.nodePorts -}}{{- $count = min $count (len $svc.nodePorts) | int -}}{{- end -}}
{{- range $i := until $count -}}
{{- $host := $ea.advertised.domain -}}
{{- if $hosts -}}{{- $host = index $hosts $i -}}{{- end -}}
{{- $port := add (int $ea.advertised.basePort) $i -}}
{{- if $svc.nodePorts -}}{{- $port = index $svc.nodePorts $i -}}{{- end -}}
{{- $addresses = append $addresses (printf "%s:%d" $host (int $port)) -}}
{{- end -}}
{{- end -}}
{{- join "," $addresses -}}
{{- end -}}

{{/*
Return the brokers' GOULETTE_ADVERTISE_LISTENERS: listener@<pod>=<external address> for every pod.
*/}}
{{- define "goulette.externalAccess.listeners" -}}
{{- $name := include "goulette.broker.fullname" . -}}
{{- $entries := list -}}
{{- range $i, $address := splitList "," (include "goulette.externalAccess.addresses" .) -}}
{{- $entries = append $entries (printf "%s@%s-%d=%s" $.Values.externalAccess.listener $name $i $address) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/*
Return the sentinels' GOULETTE_LISTENER_HOSTS: listener=<host> for each of externalAccess.sentinel.hosts.
*/}}
{{- define "goulette.externalAccess.listenerHosts" -}}
{{- $entries := list -}}
{{- range .Values.externalAccess.sentinel.hosts -}}
{{- $entries = append $entries (printf "%s=%s" $.Values.externalAccess.listener .) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}
