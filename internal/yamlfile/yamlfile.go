// Package yamlfile decodes one YAML document into a tagged struct, strictly,
// and reports every problem with its file, line and field path.
//
// It exists because goccy/go-yaml's strict decoding stops at the first
// problem and names it by token position only, while a user fixing a
// config or mapping file needs all of them at once, each with its line and
// field path, in the FILE:LINE form editors and CI logs link to. Package
// config and package mapping both read their files with it and add their
// own validation problems to the same list.
//
// The package imports nothing else of dvsync.
package yamlfile

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a file: a syntax error, an unknown field,
// a value of the wrong type, or a value that fails validation. Its text is
// "FILE:LINE: PATH: MESSAGE", the form editors and CI logs link to.
// Problems never quote secret values.
type Problem struct {
	// File is the file as named to Decode; empty when a value built in
	// code is validated.
	File string
	// Line is 1-based; 0 when unknown. A missing field is reported at the
	// line of the nearest enclosing field that is present.
	Line int
	// Path is the field path, such as "columns[2].target" or
	// "connections.app.dsn"; empty for the file as a whole.
	Path string
	Msg  string
}

// Error returns "FILE:LINE: PATH: MESSAGE", leaving out the parts that are
// empty or unknown.
func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems collects Problems so that validation reports all of them rather
// than the first. It is not safe for concurrent use.
type Problems []*Problem

// Add appends a problem at path, with no file or line yet; Positions.Locate
// fills those in.
func (ps *Problems) Add(path, format string, args ...any) {
	*ps = append(*ps, &Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil for no problems, or the problems joined with
// errors.Join, one per line of the error text. It sorts ps in place by
// line, keeping the order of problems on one line; errors.As finds the
// first as a *Problem.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b *Problem) int { return a.Line - b.Line })
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Without returns the problems of ps that are not at or under the path of
// one of failed, reusing ps's storage. Validation problems are dropped
// where decoding already failed: a field that could not be decoded is zero,
// and "required" on top of "expected an integer" would only be noise.
func (ps Problems) Without(failed Problems) Problems {
	out := ps[:0]
	for _, p := range ps {
		if !slices.ContainsFunc(failed, func(f *Problem) bool { return isUnder(p.Path, f.Path) }) {
			out = append(out, p)
		}
	}
	return out
}

// isUnder reports whether path is base or a field below it.
func isUnder(path, base string) bool {
	if !strings.HasPrefix(path, base) {
		return false
	}
	rest := path[len(base):]
	return base == "" || rest == "" || rest[0] == '.' || rest[0] == '['
}

// JoinPath returns the path of field name inside the value at base:
// "log" and "level" make "log.level"; an empty base is the document.
func JoinPath(base, name string) string {
	if base == "" {
		return name
	}
	return base + "." + name
}

// Positions maps field paths, as in Problem.Path, to the line they were
// written on. Decode returns it; it is read-only afterwards and then safe
// for concurrent use.
type Positions map[string]int

// Line returns the line of path, or of its nearest ancestor that was
// written, or 1.
func (ps Positions) Line(path string) int {
	for {
		if l, ok := ps[path]; ok {
			return l
		}
		if path == "" {
			return 1
		}
		if i := strings.LastIndexAny(path, ".["); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
}

// Locate sets File of each problem in list, and Line where it is unknown
// (0) from the positions. Nil positions leave lines as they are.
func (ps Positions) Locate(file string, list Problems) {
	for _, p := range list {
		p.File = file
		if p.Line == 0 && ps != nil {
			p.Line = ps.Line(p.Path)
		}
	}
}
