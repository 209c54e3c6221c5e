// Peer clients that certgate's tests run, pinned apart from the product's go.mod so
// that the product's dependencies stay the ones it links. Run one with
// `go tool -modfile=.ci/peers/go.mod NAME` from the repository root.
module github.com/certgate/certgate

go 1.26.8

tool github.com/micromdm/scep/v2/cmd/scepclient

require (
	github.com/go-kit/kit v0.4.0 // indirect
	github.com/go-logfmt/logfmt v0.5.1 // indirect
	github.com/go-stack/stack v1.6.0 // indirect
	github.com/gorilla/context v0.0.0-20160226214623-1ea25387ff6f // indirect
	github.com/gorilla/mux v1.4.0 // indirect
	github.com/groob/finalizer v0.0.0-20170707115354-4c2ed49aabda // indirect
	github.com/micromdm/scep/v2 v2.3.0 // indirect
	github.com/pkg/errors v0.8.0 // indirect
	github.com/smallstep/pkcs7 v0.1.1 // indirect
	github.com/smallstep/scep v0.0.0-20241223071629-a37a330173bc // indirect
	golang.org/x/crypto v0.32.0 // indirect
	golang.org/x/net v0.25.0 // indirect
)
