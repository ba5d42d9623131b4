{{/*
A worker Deployment for one role: (dict "root" $ "role" "cpu" "values" .Values.workerCpu).
Every role is started the same way (`keelwatch worker --role ROLE`), as in docker-compose.yml.
*/}}
{{- define "keelwatch.workerDeployment" -}}
{{- $root := .root -}}
{{- $values := .values -}}
{{- $component := printf "worker-%s" .role -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "keelwatch.fullname" $root }}-{{ $component }}
  labels:
    {{- include "keelwatch.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  replicas: {{ $values.replicas }}
  selector:
    matchLabels:
      {{- include "keelwatch.selectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "keelwatch.selectorLabels" (dict "root" $root "component" $component) | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $values.metricsPort | quote }}
        prometheus.io/path: /metrics
    spec:
      {{- include "keelwatch.podCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      containers:
        - name: worker
          image: {{ include "keelwatch.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - worker
            - --role
            - {{ .role }}
            - --concurrency
            - {{ $values.concurrency | quote }}
            - --hostname
            - {{ printf "%s@%%h" .role | quote }}
          envFrom:
            {{- include "keelwatch.envFrom" $root | nindent 12 }}
          env:
            {{- include "keelwatch.authSecretEnv" $root | nindent 12 }}
            - name: KEELWATCH_WORKER__METRICS_PORT
              value: {{ $values.metricsPort | quote }}
            # Celery's pool processes share their metrics through this folder.
            - name: KEELWATCH_WORKER__METRICS_MULTIPROC_DIR
              value: /tmp/prometheus-multiproc
          ports:
            - name: metrics
              containerPort: {{ $values.metricsPort }}
              protocol: TCP
          livenessProbe:
            httpGet: {path: /metrics, port: metrics}
            initialDelaySeconds: 30
            periodSeconds: 30
            timeoutSeconds: 5
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          volumeMounts:
            {{- include "keelwatch.volumeMounts" $root | nindent 12 }}
            {{- include "keelwatch.sharedVolumeMount" $root | nindent 12 }}
      volumes:
        {{- include "keelwatch.volumes" $root | nindent 8 }}
        {{- include "keelwatch.sharedVolume" $root | nindent 8 }}
{{- end }}
