package emulator

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// TestFirstRows: the page is the first n rows of the fully sorted rows,
// in order, for every n around and beyond the number of rows.
func TestFirstRows(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	byScore := func(a, b *row) int {
		if c := a.vals[0].(int64) - b.vals[0].(int64); c != 0 {
			return int(c)
		}
		return slices.Compare(a.id[:], b.id[:])
	}
	for _, total := range []int{0, 1, 7, 100, 1000} {
		all := make([]*row, total)
		for i := range all {
			all[i] = &row{id: uuid.New(), vals: []any{rnd.Int64N(50)}}
		}
		want := slices.Clone(all)
		slices.SortFunc(want, byScore)
		for _, n := range []int{0, 1, 3, total / 2, total - 1, total, total + 5} {
			if n < 0 {
				continue
			}
			got := firstRows(slices.Clone(all), n, byScore)
			if w := want[:min(n, total)]; !slices.Equal(got, w) {
				t.Errorf("total %d, n %d: got %d rows, not the first %d in order", total, n, len(got), len(w))
			}
		}
	}
}
