package rowexpr

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// The builtins over several numbers: max, min, mean, median (of their
// arguments, arrays flattened) and sum (of an array, or of a predicate
// over it). Over numeric values they work as PostgreSQL's greatest,
// least, avg and sum do:
//
//   - max and min compare exactly, NaN above every other value; the
//     first of equal values wins (greatest(1.50, 1.5) is 1.50); an int
//     among numerics is taken exactly and the result is a numeric.
//   - sum adds exactly (+ as numeric has it); mean is that sum divided
//     by the count as / divides numerics (avg's scale); median is the
//     middle value, or the mean of the two middle values.
//   - With a double precision value among them, all are converted to
//     double precision first, as PostgreSQL's greatest(numeric, double
//     precision) is double precision.
//   - A float literal among numerics is read as a numeric, as SQL reads
//     greatest(amount, 0.5).
//
// Without any numeric value they are expr-lang's own.
//
// greatest and least are max and min as PostgreSQL's: NULL (nil)
// arguments are left out, and all of them nil gives nil.

// aggregateNames are the builtins of several numbers replaced here (sum
// is patched instead: its predicate form is syntax, see patchSum).
var aggregateNames = []string{"max", "min", "mean", "median", "greatest", "least"}

// aggregateLiterals turns the float literals among the arguments of a
// call of max, min, mean or median (or among the elements of an array
// written as one) into floatLit constants.
func (p *numericPatcher) aggregateLiterals(n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || !slices.Contains(aggregateNames, id.Value) {
		return
	}
	changed := false
	lit := func(x ast.Node) ast.Node {
		y := p.floatLiteral(x)
		changed = changed || y != x
		return y
	}
	for i, a := range n.Arguments {
		if arr, ok := a.(*ast.ArrayNode); ok {
			for j, e := range arr.Nodes {
				arr.Nodes[j] = lit(e)
			}
			continue
		}
		n.Arguments[i] = lit(a)
	}
	if changed {
		// The checker types the call again (it keeps a type it finds,
		// unless that is any).
		n.SetType(anyType)
	}
}

// patchSum rewrites sum(xs) into a call of __sluice_sum, and
// sum(xs, predicate) into __sluice_sum(map(xs, predicate)).
func (p *numericPatcher) patchSum(node *ast.Node, n *ast.BuiltinNode) {
	arg := n.Arguments[0]
	if arr, ok := arg.(*ast.ArrayNode); ok {
		for j, e := range arr.Nodes {
			arr.Nodes[j] = p.floatLiteral(e)
		}
	}
	if len(n.Arguments) == 2 {
		m := &ast.BuiltinNode{Name: "map", Arguments: []ast.Node{n.Arguments[0], n.Arguments[1]}}
		m.SetLocation(n.Location())
		arg = m
	}
	p.patch(node, "__sluice_sum", arg)
}

// flatten lists the values of args, arrays flattened (to a depth of 10,
// as expr-lang's own).
func flatten(name string, args []any, depth int, out []any) ([]any, error) {
	if depth > 10 {
		return nil, fmt.Errorf("%s: arrays nested too deep", name)
	}
	for _, a := range args {
		v := reflect.ValueOf(a)
		if a != nil && (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) {
			elems := make([]any, v.Len())
			for i := range elems {
				elems[i] = v.Index(i).Interface()
			}
			var err error
			if out, err = flatten(name, elems, depth+1, out); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// aggregateType is the result type of max, min, mean or median over
// arguments of types args, when a numeric may take part (ok false: leave
// it to expr-lang's own).
func aggregateType(name string, args []reflect.Type) (t reflect.Type, ok bool, err error) {
	numeric, float, unknown := false, false, false
	for _, a := range args {
		switch {
		case a == numericType:
			numeric = true
		case a == floatLitType:
		case unknownType(a):
			unknown = true
		case a.Kind() == reflect.Slice || a.Kind() == reflect.Array:
			switch e := a.Elem(); {
			case e == numericType:
				numeric = true
			case unknownType(e), e == floatLitType:
				unknown = true
			case floatKind(e):
				float = true
			case !numberType(e):
				return anyType, true, fmt.Errorf("invalid argument for %s (type %s)", name, typeString(a))
			}
		case floatKind(a):
			float = true
		case !numberType(a):
			return anyType, true, fmt.Errorf("invalid argument for %s (type %s)", name, typeString(a))
		}
	}
	switch {
	case unknown:
		return anyType, true, nil
	case numeric && float:
		return floatType, true, nil
	case numeric:
		return numericType, true, nil
	}
	return nil, false, nil
}

// aggregateFunction is max, min, mean, median, greatest or least (see
// above).
func aggregateFunction(name string) *builtin.Function {
	skipNil := name == "greatest" || name == "least"
	ownName := map[string]string{"greatest": "max", "least": "min"}[name]
	if ownName == "" {
		ownName = name
	}
	own := builtin.Builtins[builtin.Index[ownName]]
	return &builtin.Function{
		Name: name,
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if len(args) == 0 {
				return anyType, fmt.Errorf("not enough arguments to call %s", name)
			}
			if t, ok, err := aggregateType(name, args); ok {
				return t, err
			}
			plain := make([]reflect.Type, len(args))
			for i, a := range args {
				plain[i] = a
				if a == floatLitType {
					plain[i] = floatType
				}
			}
			return own.Validate(plain)
		},
		Func: func(args ...any) (any, error) {
			vals, err := flatten(name, args, 0, nil)
			if err != nil {
				return nil, err
			}
			if skipNil {
				vals = slices.DeleteFunc(vals, func(v any) bool { return v == nil })
				if len(vals) == 0 {
					return nil, nil
				}
			}
			numeric, float := false, false
			for _, v := range vals {
				switch v.(type) {
				case Numeric:
					numeric = true
				case float64:
					float = true
				}
			}
			if !numeric {
				if len(vals) == 0 {
					return own.Func(args...)
				}
				for i, v := range vals {
					vals[i] = resolveLit(v, false)
				}
				return own.Func(vals...)
			}
			if float {
				return aggregate(name, vals, asFloat8, floatCmp, floatMean)
			}
			return aggregate(name, vals, numericArg, Numeric.cmp, numericMean)
		},
	}
}

// aggregate is max, min, mean or median over vals, each taken as a T by
// conv (ok false: not a value of the kind, an invalid argument), ordered
// by cmp (the first of equal values wins) and averaged by mean: over
// numerics, ints and float literals as numerics, or, with a double
// precision value among them, all as double precision.
func aggregate[T any](name string, vals []any, conv func(any) (T, bool, error), cmp func(T, T) int, mean func([]T) (any, error)) (any, error) {
	xs := make([]T, len(vals))
	for i, v := range vals {
		x, ok, err := conv(v)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("invalid argument for %s (type %s)", name, typeName(v))
		}
		xs[i] = x
	}
	switch name {
	case "max", "min", "greatest", "least":
		greater := name == "max" || name == "greatest"
		best := xs[0]
		for _, x := range xs[1:] {
			if c := cmp(x, best); (greater && c > 0) || (!greater && c < 0) {
				best = x
			}
		}
		return best, nil
	case "mean":
		return mean(xs)
	}
	slices.SortStableFunc(xs, cmp)
	mid := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[mid], nil
	}
	return mean(xs[mid-1 : mid+1])
}

// numericArg is an aggregate's argument as a numeric (a float literal
// read as one).
func numericArg(v any) (Numeric, bool, error) {
	n, ok := toNumeric(resolveLit(v, true))
	return n, ok, nil
}

// numericMean is avg over numerics: the exact sum divided by the count.
func numericMean(ns []Numeric) (any, error) {
	sum := numericFromInt(0)
	for _, n := range ns {
		var err error
		if sum, err = sum.add(n); err != nil {
			return nil, err
		}
	}
	return sum.quo(numericFromInt(int64(len(ns))))
}

// floatMean is avg over double precision values.
func floatMean(fs []float64) (any, error) {
	var sum any = 0.0
	for _, f := range fs {
		var err error
		if sum, err = floatOp("+", sum, f); err != nil {
			return nil, err
		}
	}
	return floatOp("/", sum, float64(len(fs)))
}

// sumFunction is sum(xs): the values of xs added with + (exactly for
// numerics, see evalBinary), starting from 0 as expr-lang's sum does.
func sumFunction() *builtin.Function {
	return &builtin.Function{
		Name: "__sluice_sum",
		Validate: func(args []reflect.Type) (reflect.Type, error) {
			if len(args) != 1 {
				return anyType, fmt.Errorf("invalid number of arguments for sum (expected 1 or 2, got %d)", len(args))
			}
			t := args[0]
			switch {
			case unknownType(t):
				return anyType, nil
			case t.Kind() != reflect.Slice && t.Kind() != reflect.Array:
				return anyType, fmt.Errorf("builtin sum takes only array (got %s)", typeString(t))
			}
			switch e := t.Elem(); {
			case e == numericType, e.Kind() == reflect.Int, floatKind(e):
				return e, nil
			}
			return anyType, nil
		},
		Func: func(args ...any) (any, error) {
			v := reflect.ValueOf(args[0])
			if args[0] == nil || (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) {
				return nil, fmt.Errorf("builtin sum takes only array (got %s)", typeName(args[0]))
			}
			// A float literal is a numeric when a numeric is among the
			// values, wherever it stands.
			vals := make([]any, v.Len())
			numeric := false
			for i := range vals {
				vals[i] = v.Index(i).Interface()
				_, isNum := vals[i].(Numeric)
				numeric = numeric || isNum
			}
			var acc any = 0
			for _, x := range vals {
				var err error
				if acc, err = evalBinary("+", runtime.Add, acc, resolveLit(x, numeric)); err != nil {
					return nil, err
				}
			}
			return acc, nil
		},
	}
}
