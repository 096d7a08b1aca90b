package recoup_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestEveryExportedNameIsDocumented walks every package of the module but
// internal ones and the examples, and fails naming each package without a
// package comment and each exported name without a doc comment: funcs,
// types, methods of exported types (interface methods included), consts and
// vars. A const or var group's comment covers its members, as go doc shows
// it; a trailing line comment counts too. Struct fields are left to review.
// Generated files are skipped.
func TestEveryExportedNameIsDocumented(t *testing.T) {
	var problems []string
	packages := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != "." && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		found, p, err := checkPackageDocs(path)
		if err != nil {
			return err
		}
		if found {
			packages++
		}
		problems = append(problems, p...)
		return nil
	})
	if err != nil {
		t.Fatalf("walk the module: %v", err)
	}
	if packages < 8 {
		t.Fatalf("checked only %d packages: the walk is not seeing the module", packages)
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// skipDir reports whether a directory is outside the check: what the go
// tool ignores, and packages that are not public API.
func skipDir(name string) bool {
	switch name {
	case "internal", "examples", "testdata", "vendor":
		return true
	}
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// checkPackageDocs checks the non-test Go files in dir, which form at most
// one package. found is false if there are none.
func checkPackageDocs(dir string) (found bool, problems []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, nil, err
	}
	fset := token.NewFileSet()
	hasPackageDoc := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return false, nil, err
		}
		found = true
		if f.Doc != nil {
			hasPackageDoc = true
		}
		if ast.IsGenerated(f) {
			continue
		}
		problems = append(problems, checkFileDocs(fset, f)...)
	}
	if found && !hasPackageDoc {
		problems = append(problems, fmt.Sprintf("%s: package has no package comment (put it in doc.go)", dir))
	}
	return found, problems, nil
}

// checkFileDocs lists the exported names of f without a doc comment.
func checkFileDocs(fset *token.FileSet, f *ast.File) []string {
	var problems []string
	missing := func(pos token.Pos, what string) {
		problems = append(problems, fmt.Sprintf("%s: %s has no doc comment", fset.Position(pos), what))
	}
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if !decl.Name.IsExported() || decl.Doc != nil {
				continue
			}
			if decl.Recv == nil {
				missing(decl.Pos(), "func "+decl.Name.Name)
				continue
			}
			if recv := receiverType(decl.Recv.List[0].Type); ast.IsExported(recv) {
				missing(decl.Pos(), "method "+recv+"."+decl.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					if !spec.Name.IsExported() {
						continue
					}
					if spec.Doc == nil && (decl.Doc == nil || len(decl.Specs) > 1) {
						missing(spec.Pos(), "type "+spec.Name.Name)
					}
					if iface, ok := spec.Type.(*ast.InterfaceType); ok {
						for _, m := range iface.Methods.List {
							for _, n := range m.Names {
								if n.IsExported() && m.Doc == nil && m.Comment == nil {
									missing(n.Pos(), "method "+spec.Name.Name+"."+n.Name)
								}
							}
						}
					}
				case *ast.ValueSpec:
					if spec.Doc != nil || spec.Comment != nil || decl.Doc != nil {
						continue
					}
					for _, n := range spec.Names {
						if n.IsExported() {
							missing(n.Pos(), decl.Tok.String()+" "+n.Name)
						}
					}
				}
			}
		}
	}
	return problems
}

// receiverType is the name of a method's receiver type: T of T, *T, T[P].
func receiverType(expr ast.Expr) string {
	for {
		switch e := expr.(type) {
		case *ast.StarExpr:
			expr = e.X
		case *ast.IndexExpr:
			expr = e.X
		case *ast.IndexListExpr:
			expr = e.X
		case *ast.ParenExpr:
			expr = e.X
		case *ast.Ident:
			return e.Name
		default:
			return ""
		}
	}
}

// TestDocCheckFindsUndocumentedNames: the check itself tells documented
// names from undocumented ones.
func TestDocCheckFindsUndocumentedNames(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // the names reported, in order
	}{
		{"func", "func F() {}", []string{"func F"}},
		{"documented func", "// F does.\nfunc F() {}", nil},
		{"unexported func", "func f() {}", nil},
		{"method of exported type", "// T is.\ntype T struct{}\nfunc (*T) M() {}", []string{"method T.M"}},
		{"method of generic type", "// T is.\ntype T[P any] struct{}\nfunc (T[P]) M() {}", []string{"method T.M"}},
		{"method of unexported type", "type t struct{}\nfunc (t) M() {}", nil},
		{"type", "type T int", []string{"type T"}},
		{"type in a group", "// Group.\ntype (\n\tA int\n\t// B is.\n\tB int\n)", []string{"type A"}},
		{"interface method", "// I is.\ntype I interface {\n\tM()\n\t// N does.\n\tN()\n}", []string{"method I.M"}},
		{"const", "const C = 1", []string{"const C"}},
		{"const group doc covers members", "// Sizes.\nconst (\n\tA = 1\n\tB = 2\n)", nil},
		{"var with line comment", "var V = 1 // V is.", nil},
		{"var", "var V, w = 1, 2", []string{"var V"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "x.go", "package x\n"+tt.src+"\n", parser.ParseComments)
			is.NoErr(err)
			var got []string
			for _, p := range checkFileDocs(fset, f) {
				_, what, _ := strings.Cut(p, ": ")
				got = append(got, strings.TrimSuffix(what, " has no doc comment"))
			}
			is.Equal(got, tt.want) // the names reported
		})
	}
}
