package plugins

import (
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// correlationID is correlation-id: a request without the header gets one
// generated (uuid, uuid#counter or tracker), sent upstream and, with
// echo_downstream, back to the client.
type correlationID struct {
	header    string
	generator string
	echo      bool
	// base is uuid#counter's fixed part ("<uuid>#"), counter its count.
	base    string
	counter atomic.Uint64
	pid     string
}

func newCorrelationID(c map[string]any) *correlationID {
	ci := &correlationID{header: str(c, "header_name"), generator: str(c, "generator"),
		echo: boolean(c, "echo_downstream"), pid: strconv.Itoa(os.Getpid())}
	ci.base = string(appendUUID(nil)) + "#"
	return ci
}

func (ci *correlationID) access(x *Exchange, r Request) bool {
	id, ok := r.Header(ci.header)
	if ok && id != "" && ci.echo {
		id = x.keep(id)
	}
	if !ok || id == "" {
		id = x.text(func(b []byte) []byte { return ci.generate(b, r) })
		x.Up = append(x.Up, Edit{OpSet, ci.header, id})
	}
	if ci.echo {
		x.Down = append(x.Down, Edit{OpSet, ci.header, id})
	}
	return true
}

func (ci *correlationID) generate(b []byte, r Request) []byte {
	switch ci.generator {
	case "uuid":
		return appendUUID(b)
	case "tracker":
		// Kong's: server address-port-worker pid-connection
		// serial-requests on it-time (seconds, 3 decimals).
		ip, port, serial, reqs := r.Conn()
		b = append(b, ip...)
		b = append(b, '-')
		b = append(b, port...)
		b = append(b, '-')
		b = append(b, ci.pid...)
		b = append(b, '-')
		b = strconv.AppendUint(b, serial, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(reqs), 10)
		b = append(b, '-')
		return strconv.AppendFloat(b, float64(time.Now().UnixMilli())/1000, 'f', 3, 64)
	}
	b = append(b, ci.base...)
	return strconv.AppendUint(b, ci.counter.Add(1), 10)
}

// appendUUID appends a random (version 4) UUID.
func appendUUID(b []byte) []byte {
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // variant 10
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}
