{{/* Labels every object of the release carries; "kubevirt.io" marks what kvd installs, as KubeVirt does. */}}
{{- define "kvd.labels" -}}
kubevirt.io: ""
app.kubernetes.io/name: kvd
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector of one component's pods: (dict "root" $ "component" "controller") */}}
{{- define "kvd.selector" -}}
app.kubernetes.io/name: kvd
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image of kvd's: (dict "root" $ "name" "kvd-controller") */}}
{{- define "kvd.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "kvd.launcherImage" -}}
{{- .Values.config.launcherImage | default (include "kvd.image" (dict "root" . "name" "kvd-launcher")) -}}
{{- end -}}

{{/* The Service in front of the controller (aggregated API, ControllerService, metrics). */}}
{{- define "kvd.controllerService" -}}kvd-controller{{- end -}}

{{/* The Secrets holding TLS material (each: tls.crt, tls.key, ca.crt). */}}
{{- define "kvd.caSecret" -}}kvd-ca{{- end -}}
{{- define "kvd.controllerTLSSecret" -}}kvd-controller-tls{{- end -}}
{{- define "kvd.handlerTLSSecret" -}}kvd-handler-tls{{- end -}}

{{/* The names a certificate of the controller's answers to: its Service's DNS names. */}}
{{- define "kvd.controllerDNSNames" -}}
{{- $svc := include "kvd.controllerService" . -}}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson -}}
{{- end -}}

{{/* The name every handler's certificate carries: handlers listen on pod IPs, which no
certificate made ahead can name, so the controller checks this name instead of the address
(its --handler-server-name). */}}
{{- define "kvd.handlerServerName" -}}
{{- printf "kvd-handler.%s.svc" .Release.Namespace -}}
{{- end -}}

{{- define "kvd.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
