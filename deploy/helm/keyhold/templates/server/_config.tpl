{{/*
keyhold's server config (src/core/config.ts), as a dict. Secrets appear only as file paths:
passwordFile and pinFile point at Secret volumes, so this can be a ConfigMap.
*/}}
{{- define "keyhold.serverConfig" -}}
{{- $p := include "keyhold.paths" . | fromYaml -}}
{{- $pg := dict "url" .Values.postgresql.url "passwordFile" $p.pgPassword -}}
{{- if .Values.postgresql.tls.enabled -}}
{{- $tls := dict -}}
{{- if or .Values.postgresql.tls.ca.existingSecret .Values.postgresql.tls.ca.existingConfigMap -}}
{{- $_ := set $tls "caFile" (printf "%s/%s" $p.pgCa .Values.postgresql.tls.ca.key) -}}
{{- end -}}
{{- if .Values.postgresql.tls.clientCertSecret -}}
{{- $_ := set $tls "certFile" (printf "%s/tls.crt" $p.pgClient) -}}
{{- $_ := set $tls "keyFile" (printf "%s/tls.key" $p.pgClient) -}}
{{- end -}}
{{- with .Values.postgresql.tls.serverName -}}
{{- $_ := set $tls "serverName" . -}}
{{- end -}}
{{- $_ := set $pg "tls" $tls -}}
{{- end -}}
{{- with .Values.postgresql.pool -}}
{{- $_ := set $pg "pool" (dict "max" (int .max)) -}}
{{- end -}}
{{- $hsm := dict "module" .Values.hsm.module "pinFile" (printf "%s/pin" $p.hsmPin) -}}
{{- if .Values.hsm.slot -}}
{{- $_ := set $hsm "slot" (toString .Values.hsm.slot) -}}
{{- else -}}
{{- $_ := set $hsm "tokenLabel" .Values.hsm.tokenLabel -}}
{{- end -}}
{{- if .Values.hsm.endpointsConfigMap -}}
{{- /* The operator's ConfigMap, watched: the single-endpoint fields become the member template. */ -}}
{{- $template := $hsm -}}
{{- with .Values.hsm.memberEnv -}}
{{- $_ := set $template "env" . -}}
{{- end -}}
{{- $hsm = dict "endpoints" (dict "configMap" (dict "namespace" .Release.Namespace "name" .Values.hsm.endpointsConfigMap)) "memberTemplate" $template -}}
{{- end -}}
{{- if .Values.hsm.sessions -}}
{{- $_ := set $hsm "sessions" (int .Values.hsm.sessions) -}}
{{- end -}}
{{- $config := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.server.port))
  "storage" (dict "postgres" $pg)
  "hsm" $hsm
  "audit" (dict)
  "log" (dict "level" .Values.server.logLevel)
-}}
{{- $config = mergeOverwrite $config (deepCopy .Values.server.config) -}}
{{- toYaml $config -}}
{{- end -}}
