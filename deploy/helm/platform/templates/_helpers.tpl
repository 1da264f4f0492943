{{/* Names, labels and the pieces every workload shares. */}}

{{- define "platform.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The object name of one component: (list $ "auth"). */}}
{{- define "platform.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "platform.fullname" $root) (index . 1) -}}
{{- end -}}

{{- define "platform.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "platform.labels" -}}
{{- $root := index . 0 -}}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: platform
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "platform.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "platform.fullname" .)) -}}
{{- end -}}

{{/* One service's values: serviceDefaults overridden by services.<name>. */}}
{{- define "platform.serviceValues" -}}
{{- $root := index . 0 -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.serviceDefaults) (deepCopy (index $root.Values.services (index . 1) | default dict))) -}}
{{- end -}}

{{- define "platform.serviceImage" -}}
{{- $root := index . 0 -}}
{{- $registry := $root.Values.image.registry | trimSuffix "/" -}}
{{- $name := printf "%s%s:%s" $root.Values.image.namePrefix (index . 1) ($root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- if $registry }}{{ printf "%s/%s" $registry $name }}{{ else }}{{ $name }}{{ end -}}
{{- end -}}

{{- define "platform.databaseHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "platform.componentName" (list . "postgresql") -}}
{{- else -}}
{{- required "database.host: where is PostgreSQL?" .Values.database.host -}}
{{- end -}}
{{- end -}}

{{- define "platform.redisUrl" -}}
{{- $host := .Values.redis.host -}}
{{- if .Values.redis.inChart.enabled -}}
{{- $host = include "platform.componentName" (list . "redis") -}}
{{- end -}}
{{- $password := ternary ":$(REDIS_PASSWORD)@" "" .Values.redis.auth.enabled -}}
{{- printf "%s://%s%s:%v/%v" (ternary "rediss" "redis" .Values.redis.tls) $password (required "redis.host: where is Redis?" $host) .Values.redis.port .Values.redis.db -}}
{{- end -}}

{{/* The pod-level security context of every workload: a fixed uid, RuntimeDefault seccomp. */}}
{{- define "platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context of every container, init containers included. */}}
{{- define "platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A probe: (list "httpGet path" port period failures). */}}
{{- define "platform.httpProbe" -}}
httpGet:
  path: {{ index . 0 }}
  port: {{ index . 1 }}
periodSeconds: {{ index . 2 }}
timeoutSeconds: 3
failureThreshold: {{ index . 3 }}
{{- end -}}

{{/* The Secret's random passwords: letters and digits only, as they go into URLs. */}}
{{- define "platform.generatedPasswordKeys" -}}
- first-admin-password
{{- range $service := list "auth" "users" "items" "notifications" }}
- {{ $service }}-database-password
{{- end }}
{{- if .Values.postgresql.enabled }}
- postgres-password
{{- end }}
{{- if .Values.redis.auth.enabled }}
- redis-password
{{- end }}
{{- end -}}

{{/* A service's environment: (list $ name serviceValues). Passwords come from the Secret and
are spliced into the URLs by Kubernetes' $(VAR) expansion, never written in the pod spec. */}}
{{- define "platform.serviceEnv" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $svc := index . 2 -}}
{{- $secret := include "platform.secretName" $root -}}
- name: ENVIRONMENT
  value: production
- name: LOG_LEVEL
  value: {{ $svc.logLevel | quote }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $name }}-database-password}
- name: DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(DATABASE_PASSWORD)@%s:%v/%s%s" (index $root.Values.database.names $name) (include "platform.databaseHost" $root) $root.Values.database.port (index $root.Values.database.names $name) (ternary (printf "?%s" $root.Values.database.query) "" (ne $root.Values.database.query "")) | quote }}
{{- if $root.Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: redis-password}
{{- end }}
- name: REDIS_URL
  value: {{ include "platform.redisUrl" $root | quote }}
- name: AUTH_ISSUER
  value: {{ printf "%s/api/v1/auth" ($root.Values.publicUrl | trimSuffix "/") | quote }}
- name: JWKS_URL
  value: {{ printf "http://%s:8000/api/v1/auth/.well-known/jwks.json" (include "platform.componentName" (list $root "auth")) | quote }}
- name: FORWARDED_ALLOW_IPS
  value: {{ $svc.forwardedAllowIps | quote }}
- name: MIGRATION_WAIT_SECONDS
  value: {{ $svc.migrationWaitSeconds | quote }}
{{- if eq $name "auth" }}
- name: AUTH_PRIVATE_KEY_FILE
  value: /run/secrets/auth/private-key.pem
- name: FIRST_ADMIN_EMAIL
  value: {{ required "services.auth.firstAdminEmail" $svc.firstAdminEmail | quote }}
- name: FIRST_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: first-admin-password}
{{- end }}
{{- if eq $name "notifications" }}
- name: PUBLIC_URL
  value: {{ $root.Values.publicUrl | trimSuffix "/" | quote }}
- name: RUN_MAILER
  value: {{ ne $svc.smtp.host "" | quote }}
{{- if $svc.smtp.host }}
- name: SMTP_HOST
  value: {{ $svc.smtp.host | quote }}
- name: SMTP_PORT
  value: {{ $svc.smtp.port | quote }}
- name: SMTP_FROM
  value: {{ $svc.smtp.from | quote }}
- name: SMTP_STARTTLS
  value: {{ $svc.smtp.starttls | quote }}
{{- if $svc.smtp.username }}
- name: SMTP_USERNAME
  value: {{ $svc.smtp.username | quote }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: smtp-password}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $value := $svc.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
