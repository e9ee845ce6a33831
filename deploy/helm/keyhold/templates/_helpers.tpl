{{/* Names: "keyhold" for a release named keyhold, else "<release>-keyhold". 63 characters at most. */}}
{{- define "keyhold.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyhold.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Labels. app.kubernetes.io/name is always "keyhold" unless overridden: the webhook's objectSelector
excludes that label, so keyhold's own pods never wait on the webhook.
*/}}
{{- define "keyhold.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "keyhold.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (server, injector). Call with (dict "ctx" $ "component" "server"). */}}
{{- define "keyhold.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyhold.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "keyhold.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "keyhold.serverServiceAccount" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (include "keyhold.fullname" .) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "keyhold.reviewerName" -}}
{{- default (printf "%s-reviewer" (include "keyhold.fullname" .)) .Values.kubernetesLogin.reviewer.name -}}
{{- end -}}

{{- define "keyhold.injectorName" -}}
{{- printf "%s-webhook" (include "keyhold.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyhold.injectorServiceAccount" -}}
{{- if .Values.injector.serviceAccount.create -}}
{{- default (include "keyhold.injectorName" .) .Values.injector.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.injector.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped, so named after the release: two releases in two namespaces do not collide. */}}
{{- define "keyhold.webhookConfigurationName" -}}
{{- printf "%s-injector" (include "keyhold.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyhold.hsmEndpointConfigMap" -}}
{{- if .Values.hsm.endpoint.existingConfigMap -}}
{{- .Values.hsm.endpoint.existingConfigMap -}}
{{- else if or .Values.hsm.endpoint.env .Values.hsm.endpoint.files -}}
{{- printf "%s-hsm-endpoint" (include "keyhold.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The container securityContext of every keyhold container: non-root, read-only root filesystem,
no capabilities, no privilege escalation, the runtime's default seccomp profile.
*/}}
{{- define "keyhold.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "keyhold.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Mount paths inside the server container. */}}
{{- define "keyhold.paths" -}}
config: /etc/keyhold/config
pgPassword: /etc/keyhold/postgresql/password
pgCa: /etc/keyhold/postgresql-ca
pgClient: /etc/keyhold/postgresql-client
hsmPin: /etc/keyhold/hsm-pin
{{- end -}}

{{/* Refuses values that would put a secret where it does not belong, or cannot work. */}}
{{- define "keyhold.validate" -}}
{{- if not .Values.postgresql.url -}}
{{- fail "postgresql.url is required: keyhold's chart runs on an existing PostgreSQL" -}}
{{- end -}}
{{- if regexMatch "^[a-zA-Z0-9+.-]+://[^/@?#]*:[^/@?#]*@" .Values.postgresql.url -}}
{{- fail "postgresql.url must not carry a password (it would land in a ConfigMap): put it in the Secret named by postgresql.password.existingSecret" -}}
{{- end -}}
{{- if contains "?" .Values.postgresql.url -}}
{{- fail "postgresql.url must not have query parameters (keyhold refuses them: sslmode= and the like would look like they did something): use postgresql.password and postgresql.tls" -}}
{{- end -}}
{{- if not .Values.postgresql.password.existingSecret -}}
{{- fail "postgresql.password.existingSecret is required: the database password comes from a Secret, mounted as a file" -}}
{{- end -}}
{{- if and .Values.postgresql.tls.enabled .Values.postgresql.tls.ca.existingSecret .Values.postgresql.tls.ca.existingConfigMap -}}
{{- fail "postgresql.tls.ca: give existingSecret or existingConfigMap, not both" -}}
{{- end -}}
{{- if not .Values.hsm.module -}}
{{- fail "hsm.module is required (the PKCS#11 module's path in the container)" -}}
{{- end -}}
{{- if and (not .Values.hsm.tokenLabel) (not .Values.hsm.slot) -}}
{{- fail "set hsm.tokenLabel or hsm.slot" -}}
{{- end -}}
{{- if not .Values.hsm.pin.existingSecret -}}
{{- fail "hsm.pin.existingSecret is required: the PIN comes from a Secret, mounted as a file" -}}
{{- end -}}
{{- if and .Values.hsm.endpoint.existingConfigMap (or .Values.hsm.endpoint.env .Values.hsm.endpoint.files) -}}
{{- fail "hsm.endpoint: give existingConfigMap, or env/files for a ConfigMap the chart makes, not both" -}}
{{- end -}}
{{- range $k, $v := .Values.hsm.endpoint.env -}}
{{- if regexMatch "(?i)(pin|password|secret)" $k -}}
{{- fail (printf "hsm.endpoint.env.%s looks like a secret; it would land in a ConfigMap: use hsm.pin or server.extraEnv with a secretKeyRef" $k) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.server.antiAffinity (list "hard" "soft")) -}}
{{- fail "server.antiAffinity must be hard or soft" -}}
{{- end -}}
{{- if .Values.injector.enabled -}}
{{- if not (has .Values.injector.tls.mode (list "selfManaged" "secret")) -}}
{{- fail "injector.tls.mode must be selfManaged or secret" -}}
{{- end -}}
{{- if and (eq .Values.injector.tls.mode "selfManaged") (gt (int .Values.injector.replicas) 1) -}}
{{- fail "injector.tls.mode=selfManaged serves one replica (each would publish its own CA); for several, use injector.tls.mode=secret with cert-manager" -}}
{{- end -}}
{{- if eq .Values.injector.tls.mode "secret" -}}
{{- if not .Values.injector.tls.secretName -}}
{{- fail "injector.tls.mode=secret needs injector.tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if not (or .Values.injector.tls.caBundle .Values.injector.tls.certManagerCertificate) -}}
{{- fail "injector.tls.mode=secret needs injector.tls.caBundle (PEM) or injector.tls.certManagerCertificate" -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.injector.failurePolicy (list "Fail" "Ignore")) -}}
{{- fail "injector.failurePolicy must be Fail or Ignore" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keyhold.operatorName" -}}
{{- printf "%s-operator" (include "keyhold.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keyhold.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "keyhold.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}
