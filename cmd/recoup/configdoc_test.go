package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConfigurationDocListsTheTable: docs/configuration.md has a row for
// every variable, with the table's default.
func TestConfigurationDocListsTheTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	for _, v := range envVars {
		def, ok := documented[v.Name]
		if !ok {
			t.Errorf("docs/configuration.md has no row for %s", v.Name)
			continue
		}
		if def != v.Default {
			t.Errorf("docs/configuration.md gives %s the default %q; the code's is %q", v.Name, def, v.Default)
		}
	}
	for name := range documented {
		if _, ok := lookupEnvVar(name); !ok {
			t.Errorf("docs/configuration.md documents %s, which recoup does not read", name)
		}
	}
}
