package deployments

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// makeTargets are the Makefile targets that stage and build each image,
// and the tag they build (IMAGE_TAG defaults to dev).
var makeTargets = map[string]struct{ target, tag string }{
	"outrigger":    {"image", "outrigger"},
	"consul":       {"image-consul", "outrigger-consul"},
	"demo-service": {"image-demo", "outrigger-demo-service"},
}

// recipe returns the recipe lines of a Makefile target.
func recipe(makefile, target string) string {
	var out []string
	in := false
	for _, line := range strings.Split(makefile, "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			out = append(out, line)
		case in:
			return strings.Join(out, "\n")
		}
	}
	return strings.Join(out, "\n")
}

func TestDockerfilesAreScratchAroundOutsideBuiltBinaries(t *testing.T) {
	makefile := string(readFile(t, filepath.Join(repoRoot, "Makefile")))
	if !regexp.MustCompile(`(?m)^IMAGE_TAG\s*\?=\s*dev$`).MatchString(makefile) {
		t.Errorf("Makefile: IMAGE_TAG does not default to dev")
	}
	for image, path := range dockerfiles {
		insts, comments := parseDockerfile(t, path)
		for _, c := range comments {
			if strings.HasPrefix(strings.ReplaceAll(strings.ToLower(c), " ", ""), "#syntax=") {
				t.Errorf("%s: %q needs a registry (BuildKit frontend image)", path, c)
			}
		}
		var froms, copies []instruction
		user, entrypoint := "", ""
		for _, in := range insts {
			switch in.Cmd {
			case "FROM":
				froms = append(froms, in)
			case "COPY":
				copies = append(copies, in)
			case "USER":
				user = in.Args
			case "ENTRYPOINT":
				entrypoint = in.Args
			case "RUN", "ADD":
				t.Errorf("%s: %s %s: nothing runs or is fetched at build time", path, in.Cmd, in.Args)
			}
		}
		if len(froms) != 1 || froms[0].Args != "scratch" {
			t.Errorf("%s: FROM %v, want exactly one FROM scratch", path, froms)
		}
		if user != "65532:65532" {
			t.Errorf("%s: USER %q, want 65532:65532 (nonroot in rootfs/etc/passwd)", path, user)
		}
		var ep []string
		if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 || !strings.HasPrefix(ep[0], "/") {
			t.Errorf("%s: ENTRYPOINT %s, want the exec form of one absolute binary (there is no shell)", path, entrypoint)
		}

		// Every file the Dockerfile copies is staged by its Makefile target
		// (the e2e tests stage the same names).
		mk := makeTargets[image]
		rec := recipe(makefile, mk.target)
		if rec == "" {
			t.Errorf("Makefile has no %s target", mk.target)
			continue
		}
		if !strings.Contains(rec, "-f deployments/"+path) || !strings.Contains(rec, "-t "+mk.tag+":$(IMAGE_TAG)") {
			t.Errorf("Makefile %s does not build deployments/%s as %s:$(IMAGE_TAG):\n%s", mk.target, path, mk.tag, rec)
		}
		for _, c := range copies {
			fields := strings.Fields(c.Args)
			if len(fields) != 2 {
				t.Errorf("%s: COPY %s: want one source and one destination", path, c.Args)
				continue
			}
			src := fields[0]
			staged := strings.Contains(rec, "$(IMAGE_DIR)/"+image+"/"+src) ||
				(slices.Contains([]string{"passwd", "group"}, src) && strings.Contains(rec, "cp $(ROOTFS) $(IMAGE_DIR)/"+image+"/"))
			if !staged {
				t.Errorf("%s copies %q, which Makefile %s does not stage:\n%s", path, src, mk.target, rec)
			}
		}
	}
}

func TestOutriggerDockerfile(t *testing.T) {
	insts, comments := parseDockerfile(t, dockerfiles["outrigger"])
	want := map[string]string{
		"EXPOSE":     "8000 8001",
		"ENTRYPOINT": `["/outrigger"]`,
		"CMD":        `["run", "--config", "/etc/outrigger/outrigger.yaml"]`,
	}
	got := map[string]string{}
	var copies []string
	for _, in := range insts {
		got[in.Cmd] = in.Args
		if in.Cmd == "COPY" {
			copies = append(copies, in.Args)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s, want %s", k, got[k], v)
		}
	}
	for _, c := range []string{"outrigger /outrigger", "ca-certificates.crt /etc/ssl/certs/ca-certificates.crt", "passwd /etc/passwd", "group /etc/group"} {
		if !slices.Contains(copies, c) {
			t.Errorf("no COPY %s (copies: %q)", c, copies)
		}
	}
	if !strings.Contains(strings.Join(comments, "\n"), "Why FROM scratch") {
		t.Errorf("the Dockerfile no longer explains why it is FROM scratch with an outside-built binary")
	}
}

func TestRootfsNonRootUser(t *testing.T) {
	passwd := string(readFile(t, filepath.Join("rootfs", "etc", "passwd")))
	group := string(readFile(t, filepath.Join("rootfs", "etc", "group")))
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:65532:[^:]*:[^:]*:/sbin/nologin$`).MatchString(passwd) {
		t.Errorf("rootfs/etc/passwd has no nonroot 65532 entry without a login shell:\n%s", passwd)
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:$`).MatchString(group) {
		t.Errorf("rootfs/etc/group has no nonroot 65532 group:\n%s", group)
	}
}
