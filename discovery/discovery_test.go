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

func TestMetaBackupAndLocality(t *testing.T) {
	for in, want := range map[string]bool{"": false, "true": true, "1": true, "TRUE": true, "false": false, "yes": false} {
		if got := MetaBackup(map[string]string{BackupMetaKey: in}); got != want {
			t.Errorf("backup %q: %v", in, got)
		}
	}
	svc := map[string]string{"zone": "s", "ver": "1"}
	got := WithLocality(svc, map[string]string{"zone": "n", "region": "r", "rack": "x"})
	if got["zone"] != "s" || got["region"] != "r" || got["ver"] != "1" || got["rack"] != "" || len(svc) != 2 {
		t.Errorf("WithLocality = %v (service meta now %v)", got, svc)
	}
	if WithLocality(nil, nil) != nil || WithLocality(nil, map[string]string{"zone": ""}) != nil {
		t.Error("nothing to add, yet a map")
	}
}
