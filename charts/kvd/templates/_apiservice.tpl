{{- /*
The aggregated API subresources.kubevirt.io/v1 (KubeVirt's virt-api paths), served by the
controller's `api` port behind the Service kvd-controller. The API server authenticates the
user and proxies; the controller authorizes each call with a SubjectAccessReview.
Rendered from tls.yaml (caBundle: the chart's CA) or certmanager.yaml (cert-manager injects it).
*/ -}}
{{- define "kvd.apiService" -}}
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1.subresources.kubevirt.io
  labels:
    {{- include "kvd.labels" .root | nindent 4 }}
  {{- if .root.Values.tls.certManager.enabled }}
  annotations:
    cert-manager.io/inject-ca-from: {{ printf "%s/%s" .root.Release.Namespace (include "kvd.controllerTLSSecret" .root) }}
  {{- end }}
spec:
  group: subresources.kubevirt.io
  version: v1
  groupPriorityMinimum: {{ .root.Values.apiService.groupPriorityMinimum }}
  versionPriority: {{ .root.Values.apiService.versionPriority }}
  service:
    name: {{ include "kvd.controllerService" .root }}
    namespace: {{ .root.Release.Namespace }}
    port: 443
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}
