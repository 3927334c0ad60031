package conflict

import (
	"fmt"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Policy names how a conflict is decided: both sides changed one row
// since it was last synced.
type Policy string

// The policies of a mapping's conflict block.
const (
	// SourceWins keeps the source table's version.
	SourceWins Policy = "source-wins"
	// DataverseWins keeps Dataverse's version.
	DataverseWins Policy = "dataverse-wins"
	// NewestWins keeps the version changed last: the source's commit time
	// (or a timestamp column of the row) against Dataverse's modifiedon.
	// Equal or unknown times fall back to the tie-break.
	NewestWins Policy = "newest-wins"
	// Merge combines the versions field by field against the last synced
	// values: a field changed on one side takes that side's value; a field
	// changed on both sides to different values is decided by the
	// tie-break. A delete on either side cannot be merged and is decided
	// by the tie-break as a whole.
	Merge Policy = "merge"
	// Manual decides nothing: both versions are parked for an operator,
	// and neither side is written until the conflict is settled.
	Manual Policy = "manual"
)

// Rules is a mapping's conflict configuration.
type Rules struct {
	// Policy decides conflicts; SourceWins when empty.
	Policy Policy
	// TieBreak decides what Policy leaves open: fields changed on both
	// sides under Merge, deletes under Merge, and equal or unknown times
	// under NewestWins. SourceWins when empty. It may be SourceWins,
	// DataverseWins, NewestWins (under Merge) or Manual.
	TieBreak Policy
}

// Validate reports whether r names known policies that can be combined.
func (r Rules) Validate() error {
	switch r.Policy {
	case "", SourceWins, DataverseWins, NewestWins, Merge, Manual:
	default:
		return fmt.Errorf("conflict policy %q: must be source-wins, dataverse-wins, newest-wins, merge or manual", r.Policy)
	}
	switch r.TieBreak {
	case "", SourceWins, DataverseWins, Manual:
	case NewestWins:
		if r.Policy == NewestWins {
			return fmt.Errorf("conflict tie_break %q: newest-wins cannot break its own ties", r.TieBreak)
		}
	default:
		return fmt.Errorf("conflict tie_break %q: must be source-wins, dataverse-wins, newest-wins or manual", r.TieBreak)
	}
	return nil
}

func (r Rules) policy() Policy {
	if r.Policy == "" {
		return SourceWins
	}
	return r.Policy
}

func (r Rules) tieBreak() Policy {
	if r.TieBreak == "" || r.TieBreak == r.Policy {
		return SourceWins
	}
	return r.TieBreak
}

// Side is one end of a bidirectional mapping.
type Side uint8

const (
	// Source is the SQL table (or topic) end.
	Source Side = iota + 1
	// Dataverse is the Dataverse table end.
	Dataverse
)

func (s Side) String() string {
	switch s {
	case Source:
		return "source"
	case Dataverse:
		return "dataverse"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Other returns the opposite side.
func (s Side) Other() Side {
	if s == Source {
		return Dataverse
	}
	return Source
}

// Version is one side's state of a row, in the canonical (source column)
// space.
type Version struct {
	// Row is the row's values; nil when Deleted.
	Row change.Row
	// Deleted is true when the row no longer exists on this side.
	Deleted bool
	// Time is when this side last changed the row; zero when unknown.
	Time time.Time
}

// Same reports whether a and b are the same version of a row: both
// deleted, or both present with values Equal both ways.
func (a Version) Same(b Version) bool {
	if a.Deleted || b.Deleted {
		return a.Deleted == b.Deleted
	}
	return Equal(a.Row, b.Row) && Equal(b.Row, a.Row)
}
