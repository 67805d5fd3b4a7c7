{{/* The base name of every object. */}}
{{- define "scanplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The scanner pods' service account, which has no RBAC at all. */}}
{{- define "scanplane.scannerServiceAccount" -}}
{{- printf "%s-scanner" (include "scanplane.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scanplane.secretName" -}}
{{- include "scanplane.fullname" . -}}
{{- end -}}

{{- define "scanplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "scanplane.selectorLabels" -}}
app.kubernetes.io/name: scanplane
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scanplane.labels" -}}
{{ include "scanplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
