package recoup_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayers checks the import rules of the hexagon with go list:
// dependencies point inward only. domain imports nothing of the project;
// ports only domain; app only ports and domain; an adapter never imports
// another adapter.
func TestLayers(t *testing.T) {
	const module = "github.com/recoupdev/recoup"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string][]string{
		"domain":         nil,
		"ports":          {"domain"},
		"ports/porttest": {"domain", "ports"},
		"app":            {"domain", "ports"},
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		var own []string
		for _, imp := range fields[1:] {
			if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
				own = append(own, rest)
			}
		}
		if rules, ok := allowed[pkg]; ok {
			checked++
			for _, imp := range own {
				if !slices.Contains(rules, imp) {
					t.Errorf("%s imports %s: it may import only %v of the project", pkg, imp, rules)
				}
			}
		}
		if adapter, ok := strings.CutPrefix(pkg, "adapters/"); ok {
			checked++
			for _, imp := range own {
				if other, ok := strings.CutPrefix(imp, "adapters/"); ok && other != adapter {
					t.Errorf("adapter %s imports adapter %s: adapters never import each other", pkg, imp)
				}
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked only %d packages: go list did not list the module", checked)
	}
}
