package recoup_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// markdownFiles are the documents whose links TestDocLinks checks.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CHANGELOG.md"}
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md (%v)", err)
	}
	return append(files, docs...)
}

var (
	// [text](target) and ![alt](target), the target up to a space or ")".
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// <https://…> autolinks and bare schemes are not relative links.
	external = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:`)
)

// TestDocLinks: every relative link of README.md, CHANGELOG.md and docs/*.md
// leads to a file of the repository and, with a #fragment into a Markdown
// file, to one of its headings.
func TestDocLinks(t *testing.T) {
	for _, doc := range markdownFiles(t) {
		text := withoutCode(readFile(t, doc))
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if external.MatchString(target) {
				continue
			}
			path, fragment, _ := strings.Cut(target, "#")
			file := doc
			if path != "" {
				file = filepath.Join(filepath.Dir(doc), path)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: link %q: no such file %s", doc, target, file)
					continue
				}
			}
			if fragment == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			if !anchors(withoutCode(readFile(t, file)))[fragment] {
				t.Errorf("%s: link %q: %s has no heading #%s", doc, target, file, fragment)
			}
		}
	}
}

// TestDocsNameNothingOutside: the documents describe the behaviour
// themselves; they refer to no specification outside the repository.
func TestDocsNameNothingOutside(t *testing.T) {
	for _, doc := range append(markdownFiles(t), "api/openapi.yaml") {
		text := readFile(t, doc)
		for _, outside := range []string{"API.md", "/work/shared", "DESIGN.md", "STYLE.md"} {
			if strings.Contains(text, outside) {
				t.Errorf("%s mentions %s, which is not in the repository", doc, outside)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withoutCode blanks fenced code blocks, whose brackets and # lines are
// not links or headings.
func withoutCode(text string) string {
	lines := strings.Split(text, "\n")
	fenced := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			lines[i] = ""
			continue
		}
		if fenced {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// anchors lists the fragment ids of a Markdown file's headings as GitHub
// makes them: lower case, punctuation dropped, spaces to hyphens, "-1",
// "-2"… after repeats.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			ids[id+"-"+strconv.Itoa(n)] = true
		} else {
			ids[id] = true
		}
		seen[id]++
	}
	return ids
}

func TestAnchors(t *testing.T) {
	got := anchors("# The two guarantees\n## Health, logs and metrics\n## `recoup` — the CLI\n## Notes\n## Notes\n")
	for _, want := range []string{"the-two-guarantees", "health-logs-and-metrics", "recoup--the-cli", "notes", "notes-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
}
