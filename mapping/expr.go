package mapping

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"

	"github.com/dvsync/dvsync/change"
)

// program is one compiled expression and the source columns it reads.
// It is immutable; run is safe for concurrent use.
type program struct {
	prog *vm.Program
	// names are the row columns the expression reads, each once.
	names []string
}

// envs and vms are reused across records: an environment holds only the
// columns an expression reads, and a VM keeps its stack between runs.
var (
	envs = sync.Pool{New: func() any { return make(map[string]any, 8) }}
	vms  = sync.Pool{New: func() any { return new(vm.VM) }}
)

// identifiers lists the variables an expression reads: identifiers that
// are neither called as functions nor declared by let.
type identifiers struct {
	names   []string
	callees map[ast.Node]bool
	lets    map[string]bool
}

func (v *identifiers) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.CallNode:
		v.callees[x.Callee] = true
	case *ast.VariableDeclaratorNode:
		v.lets[x.Name] = true
	case *ast.IdentifierNode:
		if !v.callees[x] {
			v.names = append(v.names, x.Value)
		}
	}
}

// checkSyntax parses an expression and returns what is wrong with it, or
// "".
func checkSyntax(code string) string {
	if _, err := parser.Parse(code); err != nil {
		return exprProblem(err)
	}
	return ""
}

// compileExpr compiles code with every variable it reads declared as a
// source column of any type. Declaring them shadows builtins of the same
// name, so a column called "first" or "date" is still the column.
func compileExpr(code string) (*program, error) {
	tree, err := parser.Parse(code)
	if err != nil {
		return nil, errors.New(exprProblem(err))
	}
	v := &identifiers{callees: map[ast.Node]bool{}, lets: map[string]bool{}}
	ast.Walk(&tree.Node, v)
	env := types.Map{}
	var names []string
	for _, n := range v.names {
		if _, seen := env[n]; !seen && !v.lets[n] {
			env[n] = types.Any
			names = append(names, n)
		}
	}
	prog, err := expr.Compile(code, expr.Env(env))
	if err != nil {
		return nil, errors.New(exprProblem(err))
	}
	return &program{prog: prog, names: names}, nil
}

// exprProblem gives an expr error as one line: the message and where in
// the expression it is, without the snippet.
func exprProblem(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Sprintf("%s (at %d:%d of the expression)", fe.Message, fe.Line, fe.Column+1)
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}

// errUnchanged reports that an expression reads a column the source did
// not send.
var errUnchanged = errors.New("unchanged")

// run evaluates the program over a row. It returns errUnchanged when a
// column it reads is Unchanged, and an error naming the column when one
// is missing from the row.
func (p *program) run(row change.Row) (any, error) {
	env := envs.Get().(map[string]any)
	defer func() {
		clear(env)
		envs.Put(env)
	}()
	for _, name := range p.names {
		v, ok := row.Get(name)
		if !ok {
			return nil, fmt.Errorf("reads column %s, which is not in the row", name)
		}
		if v.IsUnchanged() {
			return nil, errUnchanged
		}
		env[name] = exprValue(v)
	}
	machine := vms.Get().(*vm.VM)
	out, err := machine.Run(p.prog, env)
	vms.Put(machine)
	if err != nil {
		return nil, fmt.Errorf("failed: %s", exprProblem(err))
	}
	return out, nil
}

// exprValue gives a value to an expression as the Go value expr works
// with. Decimals become float64 so that arithmetic and comparisons work;
// a column written without an expression keeps its exact digits.
func exprValue(v change.Value) any {
	switch v.Kind() {
	case change.KindText:
		return v.Str()
	case change.KindInt:
		return int(v.Int())
	case change.KindFloat:
		return v.Float()
	case change.KindDecimal:
		f, err := strconv.ParseFloat(v.Decimal(), 64)
		if err != nil {
			return v.Decimal()
		}
		return f
	case change.KindBool:
		return v.Bool()
	case change.KindTimestamp, change.KindDate:
		return v.Time()
	case change.KindUUID, change.KindJSON:
		return v.String()
	case change.KindBytes:
		return v.Bytes()
	}
	return nil
}

// fromExpr turns an expression's result into a value: nil is NULL,
// strings text, integers and floats numbers, booleans, times timestamps.
func fromExpr(x any) (change.Value, error) {
	switch y := x.(type) {
	case nil:
		return change.Null(), nil
	case string:
		return change.Text(y), nil
	case int:
		return change.Int(int64(y)), nil
	case int64:
		return change.Int(y), nil
	case int32:
		return change.Int(int64(y)), nil
	case uint64:
		if y > math.MaxInt64 {
			return change.Value{}, errOutOfRange
		}
		return change.Int(int64(y)), nil
	case float64:
		return change.Float(y), nil
	case float32:
		return change.Float(float64(y)), nil
	case bool:
		return change.Bool(y), nil
	case time.Time:
		return change.Timestamp(y), nil
	case []byte:
		return change.Bytes(y), nil
	}
	return change.Value{}, fmt.Errorf("returned a %T, which is not a column value", x)
}
