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

{{/* The workers' Deployment, and their service account, which has no RBAC at all. */}}
{{- define "scanplane.workerName" -}}
{{- printf "%s-worker" (include "scanplane.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scanplane.natsUrl" -}}
{{- required "nats.url is required when executor is nats or worker.enabled is true (the NATS server, e.g. nats://nats.nats.svc:4222)" .Values.nats.url -}}
{{- end -}}

{{/* Where the creds file of nats.existingSecret is mounted when nats.credsFile is true. */}}
{{- define "scanplane.natsCredsDir" -}}
/etc/scanplane/nats
{{- end -}}

{{/* The env of a NATS client (serve with executor nats, and the workers). */}}
{{- define "scanplane.natsEnv" -}}
{{- if and .Values.nats.credsFile (not .Values.nats.existingSecret) -}}
{{- fail "nats.credsFile needs nats.existingSecret: the Secret holding nats.creds" -}}
{{- end -}}
- name: SCANPLANE_NATS_URL
  value: {{ include "scanplane.natsUrl" . | quote }}
- name: SCANPLANE_NATS_STREAM
  value: {{ .Values.nats.stream | default "SCANPLANE_UNITS" | quote }}
{{- with .Values.nats.existingSecret }}
{{- /* Optional: a key the Secret lacks leaves its variable unset. */}}
{{- range $var, $key := dict "SCANPLANE_NATS_TOKEN" "token" "SCANPLANE_NATS_USER" "user" "SCANPLANE_NATS_PASSWORD" "password" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.nats.existingSecret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- if .Values.nats.credsFile }}
- name: SCANPLANE_NATS_CREDS
  value: {{ printf "%s/nats.creds" (include "scanplane.natsCredsDir" .) }}
{{- end }}
{{- end -}}

{{/* The volumeMounts and volumes entries of the creds file: include when nats.credsFile is true. */}}
{{- define "scanplane.natsVolumeMount" -}}
- name: nats-creds
  mountPath: {{ include "scanplane.natsCredsDir" . }}
  readOnly: true
{{- end -}}

{{- define "scanplane.natsVolume" -}}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.existingSecret }}
    items:
      - key: nats.creds
        path: nats.creds
{{- end -}}

{{- /* What the controllers read and write, in each watched namespace or cluster-wide. */}}
{{- define "scanplane.operatorRules" }}
rules:
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "list", "watch"]
  # A ScheduledScan owned by an Ingress blocks the Ingress's deletion until it is gone,
  # which the API server allows only to who may update the Ingress's finalizers.
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses/finalizers"]
    verbs: ["update"]
  # Istio VirtualServices, watched only when the cluster serves them; the same for them.
  - apiGroups: ["networking.istio.io"]
    resources: ["virtualservices"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["networking.istio.io"]
    resources: ["virtualservices/finalizers"]
    verbs: ["update"]
  - apiGroups: ["scanplane.io"]
    resources: ["scheduledscans", "scans", "registries", "scanpolicies"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  - apiGroups: ["scanplane.io"]
    resources: ["scheduledscans/status", "scans/status", "registries/status", "scanpolicies/status"]
    verbs: ["get", "patch", "update"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
  # The credentials a Registry names (spec.authSecretRef): read one by name, never listed.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get"]
{{- end }}
