package conflict

import (
	"github.com/dvsync/dvsync/change"
)

// Case is a conflict to decide: the last synced state of a row, and each
// side's version of it now.
type Case struct {
	// Base is the row as last synced to both sides. Known is false when the
	// row was never synced (both sides created it independently); Base is
	// then ignored.
	Base  Version
	Known bool
	// Source and Dataverse are the two sides' versions.
	Source, Dataverse Version
}

// Outcome says what a decision does with the two versions.
type Outcome uint8

const (
	// TakeSource makes both sides the source's version.
	TakeSource Outcome = iota + 1
	// TakeDataverse makes both sides Dataverse's version.
	TakeDataverse
	// Merged makes both sides a row combined from the two versions.
	Merged
	// Park leaves both sides as they are and parks the conflict for an
	// operator.
	Park
)

func (o Outcome) String() string {
	switch o {
	case TakeSource:
		return "take-source"
	case TakeDataverse:
		return "take-dataverse"
	case Merged:
		return "merged"
	case Park:
		return "parked"
	}
	return "Outcome(?)"
}

// Decision is the result of Decide.
type Decision struct {
	Outcome Outcome
	// Policy is the policy that decided: the mapping's own, or its
	// tie-break when the policy left the case open. For Merged it is
	// Merge, even when the tie-break settled some fields.
	Policy Policy
	// Result is the version both sides must end with; the zero Version
	// for Park.
	Result Version
	// Both lists, for Merge, the fields changed on both sides to
	// different values, which the tie-break decided.
	Both []string
}

// Decide applies rules to c. It is deterministic: pipeline A, which
// notices a conflict when it writes to Dataverse, and pipeline B, which
// notices it when it writes to the source, reach the same decision from
// the same case, so both sides end equal whichever noticed first.
func Decide(rules Rules, c Case) Decision {
	if c.Source.Same(c.Dataverse) {
		// Both sides made the same change: nothing to choose.
		return Decision{Outcome: TakeSource, Policy: rules.policy(), Result: c.Source}
	}
	return decide(rules.policy(), rules.tieBreak(), c)
}

func decide(p, tie Policy, c Case) Decision {
	switch p {
	case SourceWins:
		return take(Source, p, c)
	case DataverseWins:
		return take(Dataverse, p, c)
	case Manual:
		return Decision{Outcome: Park, Policy: p}
	case NewestWins:
		if side, ok := newer(c.Source, c.Dataverse); ok {
			return take(side, p, c)
		}
		return decide(tie, SourceWins, c)
	case Merge:
		if c.Source.Deleted || c.Dataverse.Deleted {
			return decide(tie, SourceWins, c)
		}
		return merge(tie, c)
	}
	return take(Source, SourceWins, c)
}

func take(side Side, p Policy, c Case) Decision {
	if side == Source {
		return Decision{Outcome: TakeSource, Policy: p, Result: c.Source}
	}
	return Decision{Outcome: TakeDataverse, Policy: p, Result: c.Dataverse}
}

// newer returns the side whose version changed last, and false when the
// times are equal or either is unknown.
func newer(s, d Version) (Side, bool) {
	switch {
	case s.Time.IsZero() || d.Time.IsZero() || s.Time.Equal(d.Time):
		return 0, false
	case s.Time.After(d.Time):
		return Source, true
	}
	return Dataverse, true
}

// merge combines two present versions field by field. The result has the
// source's columns in the source's order, then any only Dataverse has.
func merge(tie Policy, c Case) Decision {
	var base change.Row
	if c.Known && !c.Base.Deleted {
		base = c.Base.Row
	}
	src, dv := c.Source.Row, c.Dataverse.Row
	changedS := set(Changed(base, src))
	changedD := set(Changed(base, dv))
	var both []string
	out := make(change.Row, 0, max(len(src), len(dv)))
	pick := func(name string, s, d change.Value, hasS, hasD bool) (change.Value, bool) {
		cs, cd := changedS[name], changedD[name]
		switch {
		case cs && cd && !Same(s, d):
			both = append(both, name)
			switch tie {
			case DataverseWins:
				return d, true
			case NewestWins:
				if side, ok := newer(c.Source, c.Dataverse); ok && side == Dataverse {
					return d, true
				}
			case Manual:
				return change.Value{}, false
			}
			return s, true
		case cd:
			return d, true
		case hasS && !s.IsUnchanged():
			return s, true
		case hasD:
			return d, true
		}
		return s, true
	}
	for _, col := range src {
		d, hasD := dv.Get(col.Name)
		v, ok := pick(col.Name, col.Value, d, true, hasD)
		if !ok {
			return Decision{Outcome: Park, Policy: Manual, Both: both}
		}
		out = append(out, change.Column{Name: col.Name, Value: v})
	}
	for _, col := range dv {
		if _, ok := src.Get(col.Name); ok {
			continue
		}
		out = append(out, col)
	}
	return Decision{Outcome: Merged, Policy: Merge, Result: Version{Row: out}, Both: both}
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
