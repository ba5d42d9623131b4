{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "keelwatch.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name used as the prefix of every object. */}}
{{- define "keelwatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "keelwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "keelwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "keelwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keelwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "keelwatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Environment of every Keelwatch container: the ConfigMap, then the optional Secret. */}}
{{- define "keelwatch.envFrom" -}}
- configMapRef:
    name: {{ include "keelwatch.fullname" . }}-config
{{- with .Values.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* The Secret holding the server secret: auth.existingSecret, or the chart's own. */}}
{{- define "keelwatch.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "keelwatch.fullname" .)) }}
{{- end }}

{{/*
KEELWATCH_AUTH__SECRET from that Secret: one value for every API replica, worker and beat
(token checks and notifier-secret decryption agree across pods).
*/}}
{{- define "keelwatch.authSecretEnv" -}}
- name: KEELWATCH_AUTH__SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "keelwatch.authSecretName" . }}
      key: {{ .Values.auth.secretKey }}
{{- end }}

{{/* Writable folders for a read-only root filesystem. */}}
{{- define "keelwatch.volumeMounts" -}}
- name: data
  mountPath: /var/lib/keelwatch/data
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The volume batch jobs share between the API and every worker: inputs the API accepts, job
outputs, job profiles and distributed drift's partition files (KEELWATCH_INFERENCE__OUTPUT_DIR
points into it). Empty when sharedStorage is disabled.
*/}}
{{- define "keelwatch.sharedVolumeMount" -}}
{{- if .Values.sharedStorage.enabled }}
- name: shared
  mountPath: {{ .Values.sharedStorage.mountPath }}
{{- end }}
{{- end }}

{{- define "keelwatch.sharedVolume" -}}
{{- if .Values.sharedStorage.enabled }}
- name: shared
  persistentVolumeClaim:
    claimName: {{ .Values.sharedStorage.existingClaim | default (printf "%s-shared" (include "keelwatch.fullname" .)) }}
{{- end }}
{{- end }}

{{/*
The API and the workers always run in separate pods, and each pod's data folder is its own
emptyDir: without one ReadWriteMany volume a file the API accepts is invisible to the workers.
Refuse to render unless shared storage is on, or explicitly waived for a throw-away install.
*/}}
{{- define "keelwatch.requireSharedStorage" -}}
{{- $shared := .Values.sharedStorage -}}
{{- if $shared.enabled }}
{{- if not (has "ReadWriteMany" $shared.accessModes) }}
{{- fail "sharedStorage.accessModes must include ReadWriteMany: the API and every worker pod mount the same volume" }}
{{- end }}
{{- else if not $shared.acknowledgeNoSharing }}
{{- fail "sharedStorage.enabled=true is required: the API and the workers run in separate pods, so batch inputs, outputs and drift partition files must live on one ReadWriteMany volume (set sharedStorage.storageClassName to an RWX class such as NFS/CephFS/EFS, or sharedStorage.existingClaim). For a throw-away install without batch jobs, set sharedStorage.acknowledgeNoSharing=true." }}
{{- end }}
{{- end }}

{{- define "keelwatch.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end }}

{{/* Pod-level fields shared by every workload. */}}
{{- define "keelwatch.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
