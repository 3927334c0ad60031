{{/* The release's resource name, at most 63 characters. */}}
{{- define "dvsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dvsync.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dvsync.labels" -}}
{{ include "dvsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Secret whose keys become the container's environment. */}}
{{- define "dvsync.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "dvsync.fullname" .) -}}
{{- end -}}

{{/*
The daemon config: the user's config with what the chart decides filled
in: the HTTP and webhook listen addresses (the ports the Service and the
probes use), the mapping glob, and state.path on the state volume unless
the user set state.
*/}}
{{- define "dvsync.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "version" 1 -}}
{{- $http := get $cfg "http" | default (dict) -}}
{{- $_ = set $http "listen" (printf "0.0.0.0:%v" .Values.service.port) -}}
{{- $_ = set $cfg "http" $http -}}
{{- $_ = set $cfg "mappings" (list "*.mapping.yaml") -}}
{{- if .Values.webhook.enabled -}}
{{- $dv := get $cfg "dataverse" | default (dict) -}}
{{- $changes := get $dv "changes" | default (dict) -}}
{{- $webhook := get $changes "webhook" | default (dict) -}}
{{- $_ = set $webhook "listen" (printf "0.0.0.0:%v" .Values.webhook.port) -}}
{{- $_ = set $webhook "path" .Values.webhook.path -}}
{{- $_ = set $changes "webhook" $webhook -}}
{{- $_ = set $dv "changes" $changes -}}
{{- $_ = set $cfg "dataverse" $dv -}}
{{- end -}}
{{- if not (hasKey $cfg "state") -}}
{{- $_ = set $cfg "state" (dict "path" "/var/lib/dvsync/state.db") -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
