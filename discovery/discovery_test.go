package discovery

import "testing"

func TestMetaPriority(t *testing.T) {
	for in, want := range map[string]int{"": 0, "0": 0, "2": 2, "65535": 65535, "65536": 0, "-1": 0, "x": 0, " 1": 0} {
		if got := MetaPriority(map[string]string{PriorityMetaKey: in}); got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
	if MetaPriority(nil) != 0 {
		t.Error("nil meta")
	}
}
