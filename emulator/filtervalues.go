package emulator

import (
	"strconv"
	"strings"
)

// containValuesFunc is the Dataverse query function for multi-select choice
// columns: Microsoft.Dynamics.CRM.ContainValues(PropertyName='x',PropertyValues=['1','2'])
// matches rows whose column holds at least one of the values.
const containValuesFunc = "Microsoft.Dynamics.CRM.ContainValues"

// containValuesNode is a parsed ContainValues call.
type containValuesNode struct {
	attr   *attrDef
	values []string // option values, canonical decimal
}

func (n containValuesNode) eval(rec record) bool {
	s, ok := rec.get(n.attr).(string)
	if !ok {
		return false
	}
	for _, have := range strings.Split(s, ",") {
		for _, want := range n.values {
			if have == want {
				return true
			}
		}
	}
	return false
}

// parseContainValues parses the arguments of ContainValues after its name:
// (PropertyName='x',PropertyValues=['1','2']), in either order.
func (p *filterParser) parseContainValues() (filterNode, error) {
	bad := func() error {
		return errBadQuery("The function '%s' takes the parameters PropertyName (Edm.String) and PropertyValues (Collection(Edm.String)).", containValuesFunc)
	}
	p.next() // (
	var prop string
	var values []string
	havePropValues := false
	for {
		param := p.next()
		if param.kind != tokIdent || p.next().kind != tokEquals {
			return nil, bad()
		}
		switch param.text {
		case "PropertyName":
			v := p.next()
			if v.kind != tokString {
				return nil, bad()
			}
			prop = v.text
		case "PropertyValues":
			if p.next().kind != tokLBracket {
				return nil, bad()
			}
			for {
				v := p.next()
				if v.kind != tokString {
					return nil, bad()
				}
				n, err := strconv.ParseInt(strings.TrimSpace(v.text), 10, 32)
				if err != nil {
					return nil, bad()
				}
				values = append(values, strconv.FormatInt(n, 10))
				sep := p.next()
				if sep.kind == tokRBracket {
					break
				}
				if sep.kind != tokComma {
					return nil, bad()
				}
			}
			havePropValues = true
		default:
			return nil, bad()
		}
		sep := p.next()
		if sep.kind == tokRParen {
			break
		}
		if sep.kind != tokComma {
			return nil, bad()
		}
	}
	if prop == "" || !havePropValues {
		return nil, bad()
	}
	a, ok := p.fs.field(prop)
	if !ok {
		return nil, errNoProperty(prop, p.fs.typeName())
	}
	if a.typ != tMultiSelect {
		return nil, errBadQuery("The function '%s' applies only to multi-select choice columns; '%s' is not one.", containValuesFunc, prop)
	}
	return containValuesNode{attr: a, values: values}, nil
}
