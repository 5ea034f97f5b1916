// Command goreads tells which fields of the Go operator's API types its own code reads.
//
// It type-checks every non-test package of a db-provision-operator checkout with the standard library only:
// packages of the checkout are checked from source, standard-library packages from GOROOT, and every other
// import is an empty stand-in (expressions that go through one are left untyped, which is harmless here:
// API values enter the code as typed parameters, variables or type assertions). A field counts as read when a
// selector expression that resolves to it appears outside api/, outside test files and test helpers, and not as
// the target of an assignment; or when such code calls a hand-written function of api/ that reads it (the
// generated deep-copy functions read every field and do not count). Output (stdout, JSON): for each kind, each spec path with its Go field and the
// places that read it. tools/compat/go_fields.py merges this with the generated CRDs.
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

const apiDir = "api/v1alpha1"

type field struct {
	Path   string   `json:"path"`
	Field  string   `json:"field"`
	GoType string   `json:"go_type"`
	Zero   any      `json:"zero,omitempty"`
	ReadAt []string `json:"read_at"`
}

// output: per kind, every spec path in the order of the Go struct fields.
type output struct {
	Kinds map[string][]field `json:"kinds"`
}

type loader struct {
	root     string
	module   string
	fset     *token.FileSet
	std      types.Importer
	pkgs     map[string]*types.Package
	files    map[string][]*ast.File
	info     *types.Info
	checking map[string]bool
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goreads <db-provision-operator checkout>")
		os.Exit(2)
	}
	root, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	module, err := modulePath(root)
	if err != nil {
		fail(err)
	}
	fset := token.NewFileSet()
	l := &loader{
		root:   root,
		module: module,
		fset:   fset,
		std:    importer.ForCompiler(fset, "source", nil),
		pkgs:   map[string]*types.Package{},
		files:  map[string][]*ast.File{},
		info: &types.Info{
			Selections: map[*ast.SelectorExpr]*types.Selection{},
			Defs:       map[*ast.Ident]types.Object{},
			Uses:       map[*ast.Ident]types.Object{},
		},
		checking: map[string]bool{},
	}
	dirs, err := codeDirs(root)
	if err != nil {
		fail(err)
	}
	for _, dir := range dirs {
		if _, err := l.load(module + "/" + dir); err != nil {
			fail(err)
		}
	}
	api := l.pkgs[module+"/"+apiDir]
	if api == nil {
		fail(fmt.Errorf("no package %s in %s", apiDir, root))
	}
	reads := l.reads(api)
	out := output{Kinds: map[string][]field{}}
	for _, name := range api.Scope().Names() {
		kind, spec := kindSpec(api.Scope().Lookup(name))
		if spec == nil {
			continue
		}
		paths := []field{}
		walk(spec, "spec", &paths, reads, map[*types.Named]bool{})
		out.Kinds[kind] = paths
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "goreads:", err)
	os.Exit(1)
}

func modulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no module line in %s/go.mod", root)
}

// codeDirs lists the directories (relative, slash-separated) that hold operator code: not tests, not vendored.
func codeDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(rel))
			if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	sort.Strings(dirs)
	return dirs, err
}

// isTestCode: code that exists for the operator's tests, not for its behaviour.
func isTestCode(rel string) bool {
	if strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "test/") {
		return true
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "testutil" || part == "testing" || part == "mocks" {
			return true
		}
	}
	return false
}

func (l *loader) Import(path string) (*types.Package, error) {
	return l.ImportFrom(path, "", 0)
}

func (l *loader) ImportFrom(path, _ string, _ types.ImportMode) (*types.Package, error) {
	if path == l.module || strings.HasPrefix(path, l.module+"/") {
		return l.load(path)
	}
	if first := strings.SplitN(path, "/", 2)[0]; !strings.Contains(first, ".") {
		return l.std.Import(path)
	}
	if pkg, ok := l.pkgs[path]; ok {
		return pkg, nil
	}
	pkg := types.NewPackage(path, guessName(path))
	pkg.MarkComplete()
	l.pkgs[path] = pkg
	return pkg, nil
}

// guessName: the package name a third-party import path most likely declares (only used for the stand-ins).
func guessName(path string) string {
	parts := strings.Split(path, "/")
	name := parts[len(parts)-1]
	if len(parts) > 1 && len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
		name = parts[len(parts)-2]
	}
	if i := strings.Index(name, ".v"); i > 0 {
		name = name[:i]
	}
	name = strings.TrimPrefix(name, "go-")
	return strings.NewReplacer("-", "", ".", "").Replace(name)
}

func (l *loader) load(path string) (*types.Package, error) {
	if pkg, ok := l.pkgs[path]; ok {
		return pkg, nil
	}
	if l.checking[path] {
		return nil, fmt.Errorf("import cycle through %s", path)
	}
	l.checking[path] = true
	rel := strings.TrimPrefix(strings.TrimPrefix(path, l.module), "/")
	dir := filepath.Join(l.root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ctx := build.Default
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := ctx.MatchFile(dir, name); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(l.fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: l, Error: func(error) {}}
	pkg, _ := conf.Check(path, l.fset, files, l.info)
	l.pkgs[path] = pkg
	l.files[rel] = files
	return pkg, nil
}

// reads maps every field of the API package to the places outside api/ and tests that read it.
func (l *loader) reads(api *types.Package) map[*types.Var][]string {
	written := map[*ast.SelectorExpr]bool{}
	for _, files := range l.files {
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok && as.Tok == token.ASSIGN {
					for _, lhs := range as.Lhs {
						if sel, ok := lhs.(*ast.SelectorExpr); ok {
							written[sel] = true
						}
					}
				}
				return true
			})
		}
	}
	helpers := l.apiHelpers(api)
	out := map[*types.Var][]string{}
	record := func(ident *ast.Ident, obj types.Object) {
		site, ok := l.operatorSite(ident.Pos())
		if !ok {
			return
		}
		if v, ok := obj.(*types.Var); ok && v.IsField() && v.Pkg() == api {
			out[v] = append(out[v], site)
		}
		if fn, ok := obj.(*types.Func); ok {
			for _, v := range helpers[fn] {
				out[v] = append(out[v], site)
			}
		}
	}
	for sel, s := range l.info.Selections {
		if !written[sel] {
			record(sel.Sel, s.Obj())
		}
	}
	for ident, obj := range l.info.Uses {
		if _, ok := obj.(*types.Func); ok {
			record(ident, obj)
		}
	}
	for v, sites := range out {
		out[v] = uniqueSites(sites)
	}
	return out
}

// uniqueSites: sorted without repeats, the controller's own code before the dbctl command-line tool's.
func uniqueSites(sites []string) []string {
	sort.Slice(sites, func(i, j int) bool {
		ci, cj := strings.HasPrefix(sites[i], "cmd/dbctl/"), strings.HasPrefix(sites[j], "cmd/dbctl/")
		if ci != cj {
			return cj
		}
		return sites[i] < sites[j]
	})
	var out []string
	for _, s := range sites {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// operatorSite: "file:line" of a position in operator code (not api/, not tests), or false.
func (l *loader) operatorSite(p token.Pos) (string, bool) {
	pos := l.fset.Position(p)
	rel, _ := filepath.Rel(l.root, pos.Filename)
	rel = filepath.ToSlash(rel)
	if strings.HasPrefix(rel, "api/") || isTestCode(rel) {
		return "", false
	}
	return fmt.Sprintf("%s:%d", rel, pos.Line), true
}

// apiHelpers: the API fields each hand-written function or method of the API package reads.
func (l *loader) apiHelpers(api *types.Package) map[*types.Func][]*types.Var {
	helpers := map[*types.Func][]*types.Var{}
	for _, f := range l.files[apiDir] {
		if strings.HasPrefix(filepath.Base(l.fset.Position(f.Pos()).Filename), "zz_generated") {
			continue
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			fn, ok := l.info.Defs[fd.Name].(*types.Func)
			if !ok {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if s := l.info.Selections[sel]; s != nil && s.Kind() == types.FieldVal {
						if v, ok := s.Obj().(*types.Var); ok && v.Pkg() == api {
							helpers[fn] = append(helpers[fn], v)
						}
					}
				}
				return true
			})
		}
	}
	return helpers
}

// kindSpec: a top-level API object (embeds TypeMeta and has a Spec field) and its spec type.
func kindSpec(obj types.Object) (string, types.Type) {
	tn, ok := obj.(*types.TypeName)
	if !ok {
		return "", nil
	}
	st, ok := tn.Type().Underlying().(*types.Struct)
	if !ok {
		return "", nil
	}
	var spec types.Type
	hasMeta := false
	for i := 0; i < st.NumFields(); i++ {
		f := st.Field(i)
		if f.Name() == "TypeMeta" {
			hasMeta = true
		}
		if f.Name() == "Spec" {
			spec = f.Type()
		}
	}
	if !hasMeta {
		return "", nil
	}
	return tn.Name(), spec
}

func walk(t types.Type, path string, out *[]field, reads map[*types.Var][]string, seen map[*types.Named]bool) {
	for {
		switch u := t.(type) {
		case *types.Pointer:
			t = u.Elem()
			continue
		case *types.Slice:
			elem := u.Elem()
			if p, ok := elem.(*types.Pointer); ok {
				elem = p.Elem()
			}
			if _, ok := elem.Underlying().(*types.Struct); ok {
				path += "[]"
				t = elem
				continue
			}
			return
		}
		break
	}
	named, _ := t.(*types.Named)
	if named != nil {
		if seen[named] {
			return
		}
		seen = copySeen(seen)
		seen[named] = true
	}
	st, ok := t.Underlying().(*types.Struct)
	if !ok {
		return
	}
	owner := "struct"
	if named != nil {
		owner = named.Obj().Name()
	}
	for i := 0; i < st.NumFields(); i++ {
		f := st.Field(i)
		tag := reflect.StructTag(st.Tag(i)).Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Embedded() && name == "" && (opts == "inline" || tag == "") {
			walk(f.Type(), path, out, reads, seen)
			continue
		}
		if name == "" {
			name = f.Name()
		}
		sites := reads[f]
		if len(sites) > 3 {
			sites = sites[:3]
		}
		if sites == nil {
			sites = []string{}
		}
		child := path + "." + name
		*out = append(*out, field{
			Path:   child,
			Field:  owner + "." + f.Name(),
			GoType: types.TypeString(f.Type(), types.RelativeTo(f.Pkg())),
			Zero:   zero(f.Type()),
			ReadAt: sites,
		})
		walk(f.Type(), child, out, reads, seen)
	}
}

// zero: what the operator sees for an unset field that is a plain (non-pointer) bool, number or string; nil for
// pointers, lists, maps and structs, whose absence the code can tell apart. A zero string is reported as nil too
// (omitempty drops it from the JSON), so only false and 0 come out.
func zero(t types.Type) any {
	basic, ok := t.Underlying().(*types.Basic)
	if !ok {
		return nil
	}
	switch {
	case basic.Info()&types.IsBoolean != 0:
		return false
	case basic.Info()&types.IsNumeric != 0:
		return 0
	}
	return nil
}

func copySeen(seen map[*types.Named]bool) map[*types.Named]bool {
	c := make(map[*types.Named]bool, len(seen)+1)
	for k, v := range seen {
		c[k] = v
	}
	return c
}
