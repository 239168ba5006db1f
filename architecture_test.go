package nova_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The dependency rule of Nova's layers, checked on every non-test .go file:
//
//	domain       imports the standard library and other domain packages only
//	application  imports no adapters, ports, cmd, root package, nor any
//	             infrastructure library (pgx, go-redis, echo, websocket, watermill)
//	adapters     imports no ports
//	ports        imports no adapters
//
// and, in every folder, only _test.go files import the test doubles (adapters/memory) and the
// repository contract suite (adapters/repositorytest), so `nova serve` never runs on them.
//
// .go-arch-lint.yml (make lint-arch) holds the full allow-list; this test
// keeps the core of it inside `go test` with messages that say how to fix a
// violation.

// archInfraVendors are import path prefixes that belong in adapters/ or ports/.
var archInfraVendors = []string{
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
	"github.com/labstack/echo",
	"github.com/coder/websocket",
	"github.com/ThreeDotsLabs/watermill",
}

// archTestOnly are the module's packages only _test.go files may import.
var archTestOnly = []string{"adapters/memory", "adapters/repositorytest"}

type archViolation struct {
	File   string // slash-separated, relative to the module root
	Import string
	Reason string
}

func (v archViolation) String() string {
	return fmt.Sprintf("%s imports %s: %s", v.File, v.Import, v.Reason)
}

const (
	archDomainHint = "domain must stay pure Go (standard library only). " +
		"Define the interface in domain and implement it in adapters/."
	archApplicationHint = "application must not depend on adapters, ports, cmd, the root package " +
		"or infrastructure libraries. Declare the interface in application next to the code " +
		"that uses it, implement it in adapters/, and wire the two together in wire.go."
	archAdaptersHint = "adapters must not depend on ports (nor ports on adapters). " +
		"Move the shared type into application or domain, or connect the two in wire.go."
	archPortsHint = "ports must not depend on adapters (nor adapters on ports). " +
		"Depend on an interface declared in application and let wire.go supply the adapter."
	archTestOnlyHint = "in-memory repositories and the repository contract suite are for _test.go files only; " +
		"Nova runs on the Postgres adapters (wire.go)."
)

// archIsStdlib reports whether an import path names a standard library package:
// its first element has no dot.
func archIsStdlib(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

func archWithin(imp, prefix string) bool {
	return imp == prefix || strings.HasPrefix(imp, prefix+"/")
}

// archCheckImport returns the reason an import is not allowed for a file in the
// given top-level folder, or "" if it is allowed.
func archCheckImport(module, layer, imp string) string {
	for _, p := range archTestOnly {
		if archWithin(imp, module+"/"+p) {
			return archTestOnlyHint
		}
	}
	switch layer {
	case "domain":
		if archIsStdlib(imp) || archWithin(imp, module+"/domain") {
			return ""
		}
		return archDomainHint
	case "application":
		if imp == module {
			return archApplicationHint
		}
		for _, outer := range []string{"adapters", "ports", "cmd"} {
			if archWithin(imp, module+"/"+outer) {
				return archApplicationHint
			}
		}
		for _, v := range archInfraVendors {
			if archWithin(imp, v) || strings.HasPrefix(imp, v+"-") { // watermill-sql, watermill-redisstream
				return archApplicationHint
			}
		}
	case "adapters":
		if archWithin(imp, module+"/ports") {
			return archAdaptersHint
		}
	case "ports":
		if archWithin(imp, module+"/adapters") {
			return archPortsHint
		}
	}
	return ""
}

// checkArchitecture parses the imports of every non-test .go file under root and returns the
// forbidden ones, sorted. A file's layer is its top-level folder; folders that are no layer
// are held to the test-only rule alone.
func checkArchitecture(root, module string) ([]archViolation, error) {
	var out []archViolation
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			// The go tool ignores these folders too.
			if p != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		layer, _, _ := strings.Cut(rel, "/")
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: bad import %s: %w", rel, spec.Path.Value, err)
			}
			if reason := archCheckImport(module, layer, imp); reason != "" {
				out = append(out, archViolation{File: rel, Import: imp, Reason: reason})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Import < out[j].Import
	})
	return out, nil
}

// archModuleRoot walks up from the working directory to the folder holding
// go.mod and returns it with the module path.
func archModuleRoot(t *testing.T) (string, string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
					mod := strings.Trim(strings.TrimSpace(strings.SplitN(rest, "//", 2)[0]), `"`)
					if mod != "" {
						return dir, mod
					}
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func TestArchitecture(t *testing.T) {
	root, module := archModuleRoot(t)
	violations, err := checkArchitecture(root, module)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

func TestArchitectureCheckerCatchesViolations(t *testing.T) {
	const module = "github.com/nova-chat/nova"
	files := map[string]string{
		// violations
		"domain/bad/bad.go":      `import "github.com/jackc/pgx/v5"`,
		"application/bad/bad.go": "import (\n\"github.com/nova-chat/nova/adapters/postgres\"\n\"github.com/nova-chat/nova\"\n)",
		"application/infra/i.go": `import "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"`,
		"adapters/bad/bad.go":    `import "github.com/nova-chat/nova/ports/httpapi"`,
		"ports/bad/bad.go":       `import "github.com/nova-chat/nova/adapters/redisstream"`,
		"cmd/nova/doubles.go":    `import "github.com/nova-chat/nova/adapters/memory"`,
		"application/x/x.go":     `import "github.com/nova-chat/nova/adapters/repositorytest"`,
		// allowed
		"domain/good/good.go":       "import (\n\"context\"\n\"github.com/nova-chat/nova/domain/bad\"\n)",
		"domain/good/good_test.go":  `import "github.com/jackc/pgx/v5"`,
		"domain/testdata/x/x.go":    `import "github.com/jackc/pgx/v5"`,
		"application/good/good.go":  "import (\n\"github.com/nova-chat/nova/domain/good\"\n\"github.com/google/uuid\"\n)",
		"adapters/good/good.go":     "import (\n\"github.com/jackc/pgx/v5\"\n\"github.com/nova-chat/nova/application/good\"\n)",
		"ports/good/good.go":        "import (\n\"github.com/labstack/echo/v4\"\n\"github.com/nova-chat/nova/application/good\"\n)",
		"cmd/nova/main.go":          `import "github.com/nova-chat/nova/adapters/good"`,
		"wire.go":                   `import "github.com/nova-chat/nova/adapters/good"`,
		"domain/notgo/readme.md":    "import pgx",
		"adapters/good/queries.sql": "select 1",
		"application/x/x_test.go":   `import "github.com/nova-chat/nova/adapters/memory"`,
		"adapters/memory/memory.go": `import "github.com/nova-chat/nova/domain/good"`,
	}
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		src := body
		if strings.HasSuffix(name, ".go") {
			pkg := path.Base(path.Dir(name))
			if pkg == "." {
				pkg = "nova"
			}
			src = "package " + pkg + "\n\n" + body + "\n"
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got, err := checkArchitecture(root, module)
	if err != nil {
		t.Fatal(err)
	}
	want := []archViolation{
		{"adapters/bad/bad.go", "github.com/nova-chat/nova/ports/httpapi", archAdaptersHint},
		{"application/bad/bad.go", "github.com/nova-chat/nova", archApplicationHint},
		{"application/bad/bad.go", "github.com/nova-chat/nova/adapters/postgres", archApplicationHint},
		{"application/infra/i.go", "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream", archApplicationHint},
		{"application/x/x.go", "github.com/nova-chat/nova/adapters/repositorytest", archTestOnlyHint},
		{"cmd/nova/doubles.go", "github.com/nova-chat/nova/adapters/memory", archTestOnlyHint},
		{"domain/bad/bad.go", "github.com/jackc/pgx/v5", archDomainHint},
		{"ports/bad/bad.go", "github.com/nova-chat/nova/adapters/redisstream", archPortsHint},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("violations:\n got  %v\n want %v", got, want)
	}

	msg := got[6].String()
	const wantMsg = "domain/bad/bad.go imports github.com/jackc/pgx/v5: domain must stay pure Go " +
		"(standard library only). Define the interface in domain and implement it in adapters/."
	if msg != wantMsg {
		t.Errorf("message:\n got  %s\n want %s", msg, wantMsg)
	}
}

func TestArchitectureCheckerDomainOnlyViolation(t *testing.T) {
	// The single-violation case from the brief: exactly one report, with the fix.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "domain", "bad"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package bad\n\nimport _ \"github.com/jackc/pgx/v5\"\n"
	if err := os.WriteFile(filepath.Join(root, "domain", "bad", "bad.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := checkArchitecture(root, "github.com/nova-chat/nova")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("want exactly 1 violation, got %d: %v", len(got), got)
	}
	if got[0].File != "domain/bad/bad.go" || got[0].Import != "github.com/jackc/pgx/v5" {
		t.Errorf("wrong violation: %v", got[0])
	}
	if !strings.Contains(got[0].String(), "implement it in adapters/") {
		t.Errorf("violation lacks the fix hint: %v", got[0])
	}
}

func TestArchitectureCheckerEmptyTree(t *testing.T) {
	got, err := checkArchitecture(t.TempDir(), "github.com/nova-chat/nova")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("empty tree: want no violations, got %v", got)
	}
}

const archTagHint = "domain and application types carry no struct tags: how a type is encoded " +
	"belongs to the port or adapter that writes it. Declare a response or wire type there " +
	"and map to it (the Message JSON: internal/messagejson; stored events: adapters/postgres/event_data.go)."

// checkNoStructTags returns "file:line: field" for every tagged struct field in the non-test
// .go files under domain/ and application/ of root.
func checkNoStructTags(root string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	for _, layer := range []string{"domain", "application"} {
		dir := filepath.Join(root, layer)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if field, ok := n.(*ast.Field); ok && field.Tag != nil {
					pos := fset.Position(field.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					out = append(out, fmt.Sprintf("%s:%d: %s", filepath.ToSlash(rel), pos.Line, field.Tag.Value))
				}
				return true
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func TestDomainAndApplicationTypesCarryNoTags(t *testing.T) {
	root, _ := archModuleRoot(t)
	tagged, err := checkNoStructTags(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range tagged {
		t.Errorf("%s: %s", v, archTagHint)
	}
}

func TestTagCheckerCatchesATaggedField(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"domain/bad/bad.go":             "package bad\n\ntype M struct {\n\tID string `json:\"id\"`\n}\n",
		"application/good/good.go":      "package good\n\ntype M struct{ ID string }\n",
		"application/good/good_test.go": "package good\n\ntype T struct {\n\tID string `json:\"id\"`\n}\n",
	}
	for name, src := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := checkNoStructTags(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"domain/bad/bad.go:4: `json:\"id\"`"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tagged fields:\n got  %v\n want %v", got, want)
	}
}
