package deployments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/gateway"
)

// repoRoot is the repository root: tests run in deployments/.
const repoRoot = ".."

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validConfig checks an outrigger configuration as `outrigger validate`
// does (parse, then build the gateway without listening), with env as the
// process environment, and returns it.
func validConfig(t *testing.T, name string, data []byte, env map[string]string) *config.File {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f, err := config.Parse(name, data, lookup)
	if err != nil {
		t.Fatalf("%s is not a valid outrigger configuration with env %v:\n%v", name, env, err)
	}
	if _, err := gateway.New(f, gateway.Options{Log: zerolog.Nop(), Version: "test", LookupEnv: lookup}); err != nil {
		t.Fatalf("%s: outrigger would refuse it: %v", name, err)
	}
	return f
}

// dockerfile is a Dockerfile's instructions: keyword (upper case) and
// arguments, continuation lines joined, comments dropped.
type instruction struct{ Cmd, Args string }

func parseDockerfile(t *testing.T, path string) (insts []instruction, comments []string) {
	t.Helper()
	var cur string
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && strings.HasPrefix(trimmed, "#") {
			comments = append(comments, trimmed)
			continue
		}
		if cur == "" && trimmed == "" {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		cmd, args, _ := strings.Cut(cur, " ")
		insts = append(insts, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return insts, comments
}

// dockerfiles are the image definitions, by image.
var dockerfiles = map[string]string{
	"outrigger":    filepath.Join("Dockerfile"),
	"consul":       filepath.Join("consul", "Dockerfile"),
	"demo-service": filepath.Join("demo-service", "Dockerfile"),
}
