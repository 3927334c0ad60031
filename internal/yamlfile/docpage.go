package yamlfile

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
)

// The functions below let a package test that its reference page (a
// Markdown file) stays true to its structs: every example parses, and
// every field is documented and every documented field exists.

// Block is one ```yaml block of a Markdown page.
type Block struct {
	Text string
	// Line is the page line (1-based) of the block's first YAML line.
	Line int
}

// MarkdownBlocks returns the ```yaml blocks of a Markdown page, in order.
func MarkdownBlocks(page string) ([]Block, error) {
	var blocks []Block
	var cur []string
	start := 0
	for i, line := range strings.Split(page, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case start == 0 && trimmed == "```yaml":
			start, cur = i+2, nil
		case start != 0 && trimmed == "```":
			blocks = append(blocks, Block{Text: strings.Join(cur, "\n") + "\n", Line: start})
			start = 0
		case start != 0:
			cur = append(cur, line)
		}
	}
	if start != 0 {
		return blocks, errors.New("unterminated ```yaml block")
	}
	return blocks, nil
}

// InPage rewrites the problems of err, found in block b, to name the page
// file and page lines, so a failing example points at the doc's own line.
func InPage(err error, file string, b Block) error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if p := (*Problem)(nil); errors.As(e, &p) && p.Line > 0 {
				p.File = file
				p.Line += b.Line - 1
			}
		}
	}
	return err
}

var fieldRow = regexp.MustCompile("^\\| `([^`]+)` \\|")

// FieldTable returns the field paths that start the rows of the page's
// Markdown tables headed "| Field |".
func FieldTable(page string) []string {
	var out []string
	inFields := false
	for _, line := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(line, "| Field |"):
			inFields = true
		case !strings.HasPrefix(line, "|"):
			inFields = false
		case inFields:
			if m := fieldRow.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// FieldPaths lists the leaf fields of a struct type as reference pages
// name them: "source.table", "columns[].target", "connections.<name>.dsn".
func FieldPaths(t reflect.Type) []string {
	return fieldPaths(t, "")
}

func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	names, index := Fields(t)
	for _, name := range names {
		ft := t.Field(index[name]).Type
		path := JoinPath(prefix, name)
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft, path)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft.Elem(), path+".<name>")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft.Elem(), path+"[]")...)
		default:
			out = append(out, path)
		}
	}
	return out
}
