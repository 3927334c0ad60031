package sinktest

import (
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestSameValue(t *testing.T) {
	ts := time.Date(2024, 3, 1, 9, 30, 15, 0, time.UTC)
	uuid, _ := change.ParseUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
	for _, tc := range []struct {
		want, got change.Value
		same      bool
	}{
		{change.Null(), change.Null(), true},
		{change.Null(), change.Text(""), false},
		{change.Text("a"), change.Null(), false},
		{change.Text("a"), change.Text("a"), true},
		{change.Text("a"), change.Text("A"), false},
		{change.MustDecimal("12.50"), change.MustDecimal("12.5"), true},
		{change.MustDecimal("1.5E+3"), change.Int(1500), true},
		{change.Int(1<<40 + 1), change.MustDecimal("1099511627777"), true},
		{change.Int(1<<40 + 1), change.MustDecimal("1099511627776"), false},
		{change.MustDecimal("0.1000000000000000001"), change.MustDecimal("0.1"), false},
		{change.Float(47.75), change.MustDecimal("47.75"), true},
		{change.Float(0.1), change.MustDecimal("0.1000001"), false},
		{change.Timestamp(ts.In(time.FixedZone("", 7200))), change.Text("2024-03-01T09:30:15Z"), true},
		{change.Timestamp(ts), change.Text("2024-03-01T09:30:16Z"), false},
		{change.Date(ts), change.Text("2024-03-01"), true},
		{uuid, change.Text("6f9619ff-8b86-d011-b42d-00c04fc964ff"), true},
		{change.Bool(true), change.Bool(true), true},
		{change.Bool(true), change.Bool(false), false},
	} {
		if got := sameValue(tc.want, tc.got); got != tc.same {
			t.Errorf("sameValue(%v %s, %v %s) = %v", tc.want, tc.want.Kind(), tc.got, tc.got.Kind(), got)
		}
	}
}
