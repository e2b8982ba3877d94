{{/* externalAccess: the addresses and listeners brokers and sentinels advertise outside the cluster. */}}

{{/*
Return the external address (host:port) of every broker, comma-separated in pod order (externalAccess).
LoadBalancer: advertised.hosts[i] (or service.loadBalancerIPs[i]) and service.port. NodePort:
advertised.hosts[i] (or advertised.domain) and service.nodePorts[i] (or advertised.basePort + i).
Fails with the value to set when the values do not give every broker an address.
*/}}
{{- define "goulette.externalAccess.addresses" -}}
{{- $ea := .Values.externalAccess -}}
{{- $svc := $ea.service -}}
{{- $n := int .Values.broker.replicas -}}
{{- $hosts := $ea.advertised.hosts -}}
{{- $addresses := list -}}
{{- if eq $svc.type "LoadBalancer" -}}
{{- if not $hosts -}}{{- $hosts = $svc.loadBalancerIPs -}}{{- end -}}
{{- if lt (len $hosts) $n -}}
{{- fail (printf "externalAccess (LoadBalancer): each broker needs the host it advertises; externalAccess.advertised.hosts (or externalAccess.service.loadBalancerIPs) lists %d, broker.replicas is %d" (len $hosts) $n) -}}
{{- end -}}
{{- range $i := until $n -}}
{{- $addresses = append $addresses (printf "%s:%d" (index $hosts $i) (int $svc.port)) -}}
{{- end -}}
{{- else -}}
{{- if and (not $hosts) (not $ea.advertised.domain) -}}
{{- fail "externalAccess (NodePort): set externalAccess.advertised.hosts (one host per broker) or externalAccess.advertised.domain (one host for all)" -}}
{{- end -}}
{{- if and $hosts (lt (len $hosts) $n) -}}
{{- fail (printf "externalAccess (NodePort): externalAccess.advertised.hosts lists %d hosts, broker.replicas is %d" (len $hosts) $n) -}}
{{- end -}}
{{- if and $svc.nodePorts (lt (len $svc.nodePorts) $n) -}}
{{- fail (printf "externalAccess (NodePort): externalAccess.service.nodePorts lists %d ports, broker.replicas is %d" (len $svc.nodePorts) $n) -}}
{{- end -}}
{{- if and (not $svc.nodePorts) (lt (int $ea.advertised.basePort) 1) -}}
{{- fail "externalAccess (NodePort): set externalAccess.service.nodePorts (one per broker) or externalAccess.advertised.basePort (broker i gets basePort + i)" -}}
{{- end -}}
{{- range $i := until $n -}}
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
