// Package grpctest holds what the tests that run real grpc-go servers and
// clients share: a codec that moves message bytes as they are, so test
// services need no generated code. Messages are *[]byte.
package grpctest

// RawCodec is a grpc encoding.Codec over *[]byte. It names itself "proto"
// so it replaces the default codec of the server or client it is given to
// (grpc.ForceServerCodec, grpc.ForceCodec), never globally.
type RawCodec struct{}

// Marshal returns the message's bytes.
func (RawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

// Unmarshal stores a copy of data in the message.
func (RawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

// Name is the content-subtype the codec stands for.
func (RawCodec) Name() string { return "proto" }
