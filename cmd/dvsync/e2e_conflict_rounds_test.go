package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestBidirectionalConflictRounds provokes a known number of conflicts:
// in each round dvsync is stopped, random rows are edited in the table,
// in Dataverse, or on both sides (each of those one conflict), and dvsync
// is started again. The conflicts it reports must be exactly the rows
// edited on both sides, and both sides must end as the merge policy says,
// round after round.
func TestBidirectionalConflictRounds(t *testing.T) {
	const rows, rounds = 8, 4
	e := newBiE2E(t, viaBoth, "{policy: merge, tie_break: dataverse-wins}")
	e.start()
	type state struct {
		name   string
		rating int
	}
	model := make([]state, rows)
	code := func(i int) string { return fmt.Sprintf("C%d", i) }
	text := func(s state) string { return fmt.Sprintf("%s|%d", s.name, s.rating) }
	for i := range rows {
		model[i] = state{"start", 0}
		e.exec(`INSERT INTO suppliers (code, name, rating) VALUES ($1, 'start', 0)`, code(i))
	}
	for i := range rows {
		e.bothSides(code(i), text(model[i]))
	}
	e.quiet()
	e.stop()

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	edit := 0
	// pgEdit and dvEdit change one field of row i on one side and return
	// the row as that side now has it.
	pgEdit := func(i int, s state) state {
		edit++
		if rnd.IntN(2) == 0 {
			s.name = fmt.Sprintf("pg%d", edit)
			e.exec(`UPDATE suppliers SET name = $2 WHERE code = $1`, code(i), s.name)
		} else {
			s.rating = edit
			e.exec(`UPDATE suppliers SET rating = $2 WHERE code = $1`, code(i), s.rating)
		}
		return s
	}
	dvEdit := func(i int, s state) (state, string) {
		edit++
		if rnd.IntN(2) == 0 {
			s.name = fmt.Sprintf("dv%d", edit)
			e.dvEdit(code(i), fmt.Sprintf(`{"cr1_name":%q}`, s.name))
			return s, "name"
		}
		s.rating = edit
		e.dvEdit(code(i), fmt.Sprintf(`{"cr1_rating":%d}`, s.rating))
		return s, "rating"
	}
	for round := 1; round <= rounds; round++ {
		provoked := 0
		for i := range rows {
			base := model[i]
			switch rnd.IntN(4) {
			case 0: // untouched
			case 1:
				model[i] = pgEdit(i, base)
			case 2:
				model[i], _ = dvEdit(i, base)
			default:
				// Both sides: merge keeps each side's field, and
				// Dataverse's value of a field both changed.
				pg := pgEdit(i, base)
				dv, field := dvEdit(i, base)
				merged := pg
				if field == "name" {
					merged.name = dv.name
				} else {
					merged.rating = dv.rating
				}
				model[i] = merged
				provoked++
			}
		}
		e.start()
		for i := range rows {
			e.bothSides(code(i), text(model[i]))
		}
		e.quiet()
		if got := e.conflicts(); got != float64(provoked) {
			t.Errorf("round %d (seed %d): %v conflicts reported, %d provoked", round, seed, got, provoked)
		}
		settled := make([]string, rows)
		for i := range rows {
			settled[i] = e.versions(code(i))
		}
		e.quiet()
		for i := range rows {
			if v := e.versions(code(i)); v != settled[i] {
				t.Errorf("round %d: row %s written after quiescence: versions %s, then %s", round, code(i), settled[i], v)
			}
		}
		e.stop()
	}
}
