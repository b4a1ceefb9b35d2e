{{/* Names and labels. */}}

{{- define "gatekeeper.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatekeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatekeeper.fullname" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatekeeper.labels" -}}
{{ include "gatekeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Redis's StatefulSet name, short enough for its pods' controller-revision-hash label. */}}
{{- define "gatekeeper.redisName" -}}
{{- printf "%s-redis" (include "gatekeeper.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}

{{- define "gatekeeper.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "gatekeeper.redisName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatekeeper.redisLabels" -}}
{{ include "gatekeeper.redisSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gatekeeper.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-gatekeeper" (include "gatekeeper.fullname" .)) -}}
{{- end -}}

{{- define "gatekeeper.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "gatekeeper.fullname" .)) -}}
{{- end -}}

{{- define "gatekeeper.policiesName" -}}
{{- .Values.policies.existingConfigMap | default (printf "%s-gatekeeper-policies" (include "gatekeeper.fullname" .)) -}}
{{- end -}}

{{- define "gatekeeper.redisSecretName" -}}
{{- .Values.redis.existingSecret | default (include "gatekeeper.redisName" .) -}}
{{- end -}}

{{/* The native sidecar needs Kubernetes 1.29; the preStop sleep action 1.30. */}}
{{- define "gatekeeper.hasSleepAction" -}}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}true{{ end -}}
{{- end -}}

{{/*
gatekeeper.yaml: the user's `config` plus the keys that follow from the pod's shape. Refuses,
with the key and the reason, what would make a pod that cannot work: chart-owned keys set by
hand, no way to authenticate, a ${VAR} that nothing provides, a grace period the shutdown does
not fit in.
*/}}
{{- define "gatekeeper.config" -}}
{{- $v := .Values -}}
{{- $config := deepCopy ($v.config | default dict) -}}
{{- range $key, $from := dict "listen" "gatekeeper.ports.public" "admin_listen" "gatekeeper.ports.admin" "upstream" "app.port" -}}
{{- if hasKey $config $key -}}
{{- fail (printf "config.%s is set by the chart (from %s): remove it from config" $key $from) -}}
{{- end -}}
{{- end -}}
{{- $policy := get $config "policy" | default dict -}}
{{- range $key := list "model" "policy" -}}
{{- if hasKey $policy $key -}}
{{- fail (printf "config.policy.%s is set by the chart (the file in the policies ConfigMap): set policies.%s instead" $key $key) -}}
{{- end -}}
{{- end -}}
{{- $oidc := get $config "oidc" -}}
{{- if not (or (dig "auth" "issuers" list $config) $oidc) -}}
{{- fail "config: gatekeeper needs auth.issuers (bearer tokens) or oidc (browser login); see the chart's README.md" -}}
{{- end -}}
{{- $dir := "/etc/gatekeeper/policies" -}}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int $v.gatekeeper.ports.public)) -}}
{{- $_ := set $config "admin_listen" (printf "0.0.0.0:%d" (int $v.gatekeeper.ports.admin)) -}}
{{- $_ := set $config "upstream" (printf "http://127.0.0.1:%d" (int $v.app.port)) -}}
{{- $_ := set $policy "model" (printf "%s/%s" $dir $v.policies.model) -}}
{{- $_ := set $policy "policy" (printf "%s/%s" $dir $v.policies.policy) -}}
{{- $_ := set $config "policy" $policy -}}
{{- if not (hasKey $config "drain_seconds") -}}
{{- $_ := set $config "drain_seconds" 15 -}}
{{- end -}}
{{- if $v.tls.enabled -}}
{{- $tls := get $config "tls" | default dict -}}
{{- range $key := list "cert_file" "key_file" -}}
{{- if hasKey $tls $key -}}
{{- fail (printf "config.tls.%s is set by the chart (the Secret tls.secretName, mounted at /etc/gatekeeper/tls): remove it from config" $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $tls "cert_file" "/etc/gatekeeper/tls/tls.crt" -}}
{{- $_ := set $tls "key_file" "/etc/gatekeeper/tls/tls.key" -}}
{{- $_ := set $config "tls" $tls -}}
{{- else if hasKey $config "tls" -}}
{{- fail "config.tls needs tls.enabled (the chart mounts the certificate's Secret)" -}}
{{- end -}}
{{- if and $oidc $v.ingress.enabled $v.ingress.host (not (hasKey $oidc "redirect_url")) -}}
{{- $_ := set $oidc "redirect_url" (printf "https://%s/oauth2/callback" $v.ingress.host) -}}
{{- end -}}
{{- if $v.redis.enabled -}}
{{- $session := get $config "session" | default dict -}}
{{- if not (hasKey $session "store") -}}
{{- $_ := set $session "store" "redis" -}}
{{- end -}}
{{- $_ := set $config "session" $session -}}
{{- $redis := get $config "redis" | default dict -}}
{{- if not (hasKey $redis "url") -}}
{{- $_ := set $redis "url" (printf "redis://%s:6379/0" (include "gatekeeper.redisName" .)) -}}
{{- $_ := set $redis "password" "${REDIS_PASSWORD}" -}}
{{- end -}}
{{- $_ := set $config "redis" $redis -}}
{{- end -}}
{{- $text := toYaml $config -}}
{{- if not $v.secret.existingSecret -}}
{{- $provided := keys $v.secret.data -}}
{{- range $v.gatekeeper.extraEnv -}}
{{- $provided = append $provided .name -}}
{{- end -}}
{{- if $v.redis.enabled -}}
{{- $provided = append $provided "REDIS_PASSWORD" -}}
{{- end -}}
{{- range $ref := regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" $text -1 | uniq -}}
{{- $name := trimSuffix "}" (trimPrefix "${" $ref) -}}
{{- if not (has $name $provided) -}}
{{- fail (printf "config names ${%s}, which nothing provides: set secret.data.%s (or secret.existingSecret)" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $hooks := int $v.app.preStopSleepSeconds -}}
{{- if not $v.gatekeeper.nativeSidecar -}}
{{- $hooks = add $hooks 2 | int -}}
{{- end -}}
{{- $needed := add $hooks (int (get $config "drain_seconds")) 10 -}}
{{- if lt (int $v.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) is shorter than the shutdown: preStop sleeps (%d) + config.drain_seconds (%d) + 10 s for the app; set it to at least %d" (int $v.terminationGracePeriodSeconds) $hooks (int (get $config "drain_seconds")) $needed) -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/* The gatekeeper container: an init container with restartPolicy Always, or an ordinary one. */}}
{{- define "gatekeeper.container" -}}
{{- $v := .Values -}}
- name: gatekeeper
  image: "{{ $v.gatekeeper.image.repository }}:{{ $v.gatekeeper.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ $v.gatekeeper.image.pullPolicy }}
  {{- if $v.gatekeeper.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args: ["run", "--config", "/etc/gatekeeper/gatekeeper.yaml"]
  ports:
    - name: http
      containerPort: {{ $v.gatekeeper.ports.public }}
      protocol: TCP
    - name: admin
      containerPort: {{ $v.gatekeeper.ports.admin }}
      protocol: TCP
  {{- if or $v.secret.existingSecret $v.secret.data }}
  envFrom:
    - secretRef:
        name: {{ include "gatekeeper.secretName" . }}
  {{- end }}
  {{- if or $v.redis.enabled $v.gatekeeper.extraEnv }}
  env:
    {{- if $v.redis.enabled }}
    - name: REDIS_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "gatekeeper.redisSecretName" . }}
          key: password
    {{- end }}
    {{- with $v.gatekeeper.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- if not $v.gatekeeper.nativeSidecar }}
  lifecycle:
    preStop:
      # Both containers stop together: keep accepting while the endpoint removal spreads.
      exec:
        command: ["sleep", "{{ $v.app.preStopSleepSeconds }}"]
  {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: {{ $v.gatekeeper.ports.admin }}
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ $v.gatekeeper.ports.admin }}
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $v.gatekeeper.ports.admin }}
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 2
  resources:
    {{- toYaml $v.gatekeeper.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.gatekeeper.securityContext | nindent 4 }}
  volumeMounts:
    - name: gatekeeper-config
      mountPath: /etc/gatekeeper
      readOnly: true
    - name: gatekeeper-policies
      mountPath: /etc/gatekeeper/policies
      readOnly: true
    - name: gatekeeper-tmp
      mountPath: /tmp
    {{- if $v.tls.enabled }}
    # A directory mount of the certificate's Secret: a subPath would never see a renewal.
    - name: gatekeeper-tls
      mountPath: /etc/gatekeeper/tls
      readOnly: true
    {{- end }}
{{- end -}}
