# Sourced by test.sh and bench.sh: GOPATH mode with Debian's Go packages.
GO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GO111MODULE=off
export GOPATH="$GO_DIR/.gopath:/usr/share/gocode"
export GOCACHE="$GO_DIR/.cache/go-build"
export GOFLAGS=
export CGO_ENABLED=0  # pure Go: no C compiler needed on a fresh machine
mkdir -p "$GO_DIR/.gopath/src/tessera.dev/client"
ln -sfn "$GO_DIR" "$GO_DIR/.gopath/src/tessera.dev/client/go"
PKG_DIR="$GO_DIR/.gopath/src/tessera.dev/client/go"
