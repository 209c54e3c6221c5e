// protoc-gen-go and protoc-gen-go-grpc for proto/buf.gen.yaml, pinned apart from buf
// (see go.mod beside this file). protoc-gen-go comes from google.golang.org/protobuf
// v1.36.12, the runtime version in certgate's go.mod; keep the two equal.
module github.com/certgate/certgate/citools/protocgen

go 1.26.8

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
