package check

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// alertRules is the part of a Prometheus rule file the alerts need.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// runbookLink is an alert description's link to its section of docs/OPERATIONS.md.
var runbookLink = regexp.MustCompile(`docs/OPERATIONS\.md#([a-z0-9-]+)`)

// notInAnchor is what GitHub drops from a heading to make its anchor.
var notInAnchor = regexp.MustCompile(`[^\p{L}\p{N}\- _]`)

// atxHeading is a Markdown heading line: one to six '#', a space, the title.
var atxHeading = regexp.MustCompile(`^#{1,6} +(.*)$`)

// headingAnchors are the anchors GitHub gives the headings of a Markdown file (outside fenced
// code blocks, where '#' starts a shell comment): lower case, punctuation other than '-' and
// '_' dropped, spaces made '-'.
func headingAnchors(markdown string) map[string]bool {
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		m := atxHeading.FindStringSubmatch(line)
		if inCode || m == nil {
			continue
		}
		title := strings.TrimSpace(m[1])
		slug := strings.ReplaceAll(notInAnchor.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		anchors[slug] = true
	}
	return anchors
}

// Every alert has an expression, a severity, a summary and a description that links to its
// runbook section in docs/OPERATIONS.md, and that section exists: a link to a heading that was
// renamed, or an alert added without a runbook, fails here.
func TestEveryAlertLinksToItsRunbookSection(t *testing.T) {
	raw, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	ops, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(ops))
	seen := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue // a recording rule
			}
			seen++
			if r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: expr %q, summary %q: both must be set", r.Alert, r.Expr, r.Annotations["summary"])
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			m := runbookLink.FindStringSubmatch(r.Annotations["description"])
			if m == nil {
				t.Errorf("%s: its description links to no section of docs/OPERATIONS.md", r.Alert)
				continue
			}
			if !anchors[m[1]] {
				t.Errorf("%s links to docs/OPERATIONS.md#%s, which is no heading there", r.Alert, m[1])
			}
		}
	}
	if seen < 10 {
		t.Fatalf("read %d alerts from alerts.yml; the file's layout changed?", seen)
	}
}

func TestHeadingAnchorsAreGitHubs(t *testing.T) {
	got := headingAnchors("# Top\n### NovaOutboxStalled (critical) and NovaOutboxSlow (warning)\ntext # not a heading\n## Working out a deployment\n")
	for _, want := range []string{"top", "novaoutboxstalled-critical-and-novaoutboxslow-warning", "working-out-a-deployment"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("anchors %v, want 3", got)
	}
}

// A '#' line in a fenced code block is a shell comment, not a heading: a link to it goes nowhere.
func TestCodeBlockCommentsAreNoHeadings(t *testing.T) {
	got := headingAnchors("## Run it\n```sh\n# make run\nmake run\n```\n#hashtag\n")
	if len(got) != 1 || !got["run-it"] {
		t.Errorf("anchors %v, want only run-it", got)
	}
}
