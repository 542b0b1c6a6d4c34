{{- define "danstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "danstream.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "danstream.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
danstream.owner: the shard (0..count-1) that serves stream `name`, the same
function as Go's internal/shard.Owner: the largest sha256 hex of "name#i"
(equal-length hex digests compare as strings the way they do as numbers; ties
go to the lower index). deploy/chart_test.go checks both agree.
Call: include "danstream.owner" (dict "name" $name "count" $n)
*/}}
{{- define "danstream.owner" -}}
{{- $name := .name -}}
{{- $best := 0 -}}
{{- $bestScore := "" -}}
{{- range $i := until (int .count) -}}
{{- $score := sha256sum (printf "%s#%d" $name $i) -}}
{{- if gt $score $bestScore -}}
{{- $best = $i -}}
{{- $bestScore = $score -}}
{{- end -}}
{{- end -}}
{{- $best -}}
{{- end -}}

{{/* The danstream config every shard loads; its shard key takes the index from the pod's environment. */}}
{{- define "danstream.config" -}}
{{- $streams := dict -}}
{{- range $name, $s := .Values.streams -}}
{{- $c := deepCopy $s -}}
{{- if and $.Values.gpu.enabled (not (hasKey $c "provider")) -}}
{{- $_ := set $c "provider" $.Values.gpu.provider -}}
{{- end -}}
{{- $_ := set $streams $name $c -}}
{{- end -}}
{{- $cfg := dict
  "http" (dict "listen" (printf "0.0.0.0:%d" (int .Values.ports.http)))
  "rtsp" (dict "listen" (printf "0.0.0.0:%d" (int .Values.ports.rtsp)))
  "shard" (printf "${DANSTREAM_SHARD_INDEX}/%d" (int .Values.shards))
  "auth" .Values.auth
  "streams" $streams -}}
{{- if .Values.webrtc.enabled -}}
{{- $w := dict "udp_listen" (printf "0.0.0.0:%d" (int .Values.webrtc.udpPort)) "tcp_listen" (printf "0.0.0.0:%d" (int .Values.webrtc.tcpPort)) -}}
{{- if .Values.webrtc.publicHosts -}}
{{- $_ := set $w "hosts" (list "${DANSTREAM_PUBLIC_HOST}") -}}
{{- end -}}
{{- $_ := set $cfg "webrtc" $w -}}
{{- end -}}
{{- toYaml (mergeOverwrite $cfg (deepCopy .Values.config)) -}}
{{- end -}}
