# syntax=docker/dockerfile:1
# Nova: a static binary on a distroless base, run as a non-root user.
#   docker build -t nova --build-arg VERSION=$(git describe --tags --always) .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nova ./cmd/nova

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nova /usr/local/bin/nova
USER nonroot:nonroot
ENV NOVA_HTTP_ADDR=:8080 NOVA_ADMIN_ADDR=:9090 NOVA_LOG_FORMAT=json
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/nova", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/nova"]
CMD ["serve"]
