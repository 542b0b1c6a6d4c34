# danstream with GPU inference: CUDA runtime + cuDNN, the GPU build of ONNX Runtime
# (CUDA and TensorRT execution providers), OpenCV 4.6 for GoCV, libvpx/x264 encoders.
#
# The steps mirror scripts/setup.sh (same packages, same ORT lookup folder); only the
# ORT package differs: the CPU build comes from npm onnxruntime-node, the GPU build
# (ORT 1.29, CUDA 13) from npm com.github.asus4.onnxruntime(.linux-x64-gpu).
# No Docker engine runs on the development machines, so this file is not built in CI.
#
#   docker build -t danstream .
#   docker run --gpus all -p 8080:8080 -p 8554:8554 -p 8189:8189/udp -p 8189:8189/tcp danstream \
#       serve --config /app/configs/default.yaml        (set provider: auto or cuda)
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ARG GO_VERSION=1.24.6
ARG ORT_CORE_NPM=com.github.asus4.onnxruntime@0.4.9
ARG ORT_GPU_NPM=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
ENV DEBIAN_FRONTEND=noninteractive PATH=/usr/local/go/bin:$PATH
# Ubuntu 24.04 ships OpenCV 4.6, the version gocv v0.31 binds.
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl git gcc g++ pkg-config npm unzip \
      libopencv-dev libvpx-dev libx264-dev ffmpeg \
 && rm -rf /var/lib/apt/lists/*
# Go from the module proxy's toolchain zip (what `go` itself downloads for GOTOOLCHAIN).
RUN curl -fsSL "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${GO_VERSION}.linux-amd64.zip" -o /tmp/go.zip \
 && unzip -q /tmp/go.zip -d /tmp/go && mv "/tmp/go/golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-amd64" /usr/local/go \
 && chmod -R a+rx /usr/local/go/bin /usr/local/go/pkg/tool && rm -rf /tmp/go /tmp/go.zip
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -o /out/danstream ./cmd/danstream
# GPU ONNX Runtime 1.29: the core library (npm com.github.asus4.onnxruntime, Plugins/Linux/x64)
# and its CUDA / TensorRT provider libraries (…linux-x64-gpu); ORT loads the providers from the
# core library's folder. onnxruntime_go needs a library at least as new as its own API version.
RUN mkdir -p /out/ort && cd /tmp \
 && npm pack --silent "${ORT_CORE_NPM}" "${ORT_GPU_NPM}" \
 && for t in com.github.asus4.onnxruntime*.tgz; do tar -xzf "$t" --wildcards 'package/Plugins/Linux/x64/*.so'; done \
 && cp -a package/Plugins/Linux/x64/*.so /out/ort/ \
 && ln -s libonnxruntime.so /out/ort/libonnxruntime.so.1 && rm -rf /tmp/package /tmp/*.tgz

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# The -dev packages pull exactly the shared libraries the build linked against
# (Ubuntu renames them per release; naming the runtime packages would drift).
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libopencv-dev libvpx-dev libx264-dev ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out/danstream /app/danstream
COPY --from=build /out/ort /app/third_party/onnxruntime
COPY configs /app/configs
COPY sr/models /app/sr/models
ENV DANSTREAM_ORT_LIB=/app/third_party/onnxruntime/libonnxruntime.so.1 LD_LIBRARY_PATH=/app/third_party/onnxruntime
# 8189: WebRTC media of every viewer (UDP) and ICE-TCP; set webrtc.hosts to the host's address.
EXPOSE 8080 8554 8189/udp 8189/tcp
ENTRYPOINT ["/app/danstream"]
CMD ["serve", "--config", "/app/configs/default.yaml"]
