package admin

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// idNamespace is the UUID namespace of the ids derived from names
// (UUIDv5: SHA-1 of namespace and name), so that the configuration
// file's entities, and discovered targets, keep their ids across restarts.
const idNamespace = "7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967"

// newID returns a random (version 4) UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// stableID returns the version 5 UUID of kind and name.
func stableID(kind, name string) string {
	ns, _ := hex.DecodeString(strings.ReplaceAll(idNamespace, "-", ""))
	h := sha1.New()
	h.Write(ns)
	h.Write([]byte(kind + "\x00" + name))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// sameID compares ids case-insensitively.
func sameID(a, b string) bool { return a != "" && strings.EqualFold(a, b) }

// checkID checks an id given in a body.
func checkID(s string) (string, error) {
	if !config.IsUUID(s) {
		return "", errInvalidUUID
	}
	return strings.ToLower(s), nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errInvalidUUID = constError("expected a valid UUID")
