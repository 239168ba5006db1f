// Package check tests Nova's container packaging without a Docker daemon (this project's CI has
// none): the Dockerfile through BuildKit's own parser, the compose file through the Compose
// specification's own loader; and the Prometheus alert rules' links to their runbook sections.
// It is a module of its own so their dependencies stay out of Nova's.
package check

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func TestTheDockerfileBuildsAStaticBinaryRunAsNonRootWithAHealthCheck(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var froms []string
	var final []string // instructions of the last stage
	for _, n := range res.AST.Children {
		line := strings.ToUpper(n.Value) + " " + strings.Join(nodeArgs(n), " ")
		if strings.EqualFold(n.Value, "from") {
			froms = append(froms, line)
			final = nil
		}
		final = append(final, line)
	}
	if len(froms) < 2 {
		t.Fatalf("%d stages, want a multi-stage build: %v", len(froms), froms)
	}
	has := func(prefix, contains string) bool {
		return slices.ContainsFunc(final, func(l string) bool { return strings.HasPrefix(l, prefix) && strings.Contains(l, contains) })
	}
	all := strings.Join(flatten(res.AST.Children), "\n")
	if !strings.Contains(all, "CGO_ENABLED=0") {
		t.Error("the binary is not built static (CGO_ENABLED=0)")
	}
	var user string // the last USER of the final stage, without its group
	for _, l := range final {
		if rest, ok := strings.CutPrefix(l, "USER "); ok {
			user, _, _ = strings.Cut(strings.TrimSpace(rest), ":")
		}
	}
	if !strings.Contains(user, "nonroot") || user == "root" || user == "0" {
		t.Errorf("the final stage does not run as a non-root user: %v", final)
	}
	if !has("HEALTHCHECK ", "healthcheck") {
		t.Errorf("the final stage has no health check: %v", final)
	}
	if !has("COPY ", "--from=build") {
		t.Errorf("the final stage does not take the binary from the build stage: %v", final)
	}
}

func nodeArgs(n *parser.Node) []string {
	out := append([]string(nil), n.Flags...)
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

func flatten(nodes []*parser.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Original)
	}
	return out
}

func TestTheComposeFileRunsTwoInstancesWithTheirBackendsAndMonitoring(t *testing.T) {
	dir, _ := filepath.Abs("..")
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{"NOVA_JWT_SECRET": strings.Repeat("s", 40)},
	}, func(o *loader.Options) { o.SetProjectName("nova", true) })
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"nova-1", "nova-2", "postgres", "redis", "prometheus", "grafana"} {
		if _, ok := project.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	for _, name := range []string{"nova-1", "nova-2"} {
		s := project.Services[name]
		if s.Build == nil || s.Environment["NOVA_JWT_SECRET_FILE"] == nil || s.Environment["NOVA_INSTANCE_ID"] == nil {
			t.Errorf("%s: built from the Dockerfile, with the secret as a file and its own instance id: %+v", name, s.Environment)
		}
		for _, dep := range []string{"postgres", "redis"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
	}
	redis := strings.Join(project.Services["redis"].Command, " ")
	if !strings.Contains(redis, "--appendonly yes") || !strings.Contains(redis, "--maxmemory-policy noeviction") {
		t.Errorf("redis runs %q, want AOF and noeviction", redis)
	}
	// every file a service mounts exists in the repository
	for _, s := range project.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which does not exist", s.Name, v.Source)
			}
		}
	}
}
