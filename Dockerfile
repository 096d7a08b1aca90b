# recoup's container image: a static binary on distroless, run as non-root.
#
#   docker build -t recoup .            (or: make docker, which stamps the version)
#   docker run --rm recoup version
#
# The build stage uses the Go toolchain the project pins (go1.27.3).

FROM golang:1.27.3 AS build
WORKDIR /src
# The image's own Go is the pinned one: never download another.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version stamp `recoup version` prints (see cmd/recoup/version.go);
# .git is not in the build context, so make docker passes them.
ARG VERSION=unknown
ARG COMMIT=
ARG DATE=
RUN date="${DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}" && \
    go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${date}" \
      -o /out/recoup ./cmd/recoup && \
    /out/recoup version

# distroless/static: CA certificates (for Stripe and SMTP over TLS), tzdata,
# no shell; the :nonroot variant runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/recoup /usr/local/bin/recoup
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/recoup"]
CMD ["serve"]
