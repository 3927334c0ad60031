package state

import (
	"context"
	"fmt"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func TestIDIndex(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open.must(t).(IDIndex)
		if _, ok, err := s.IDKey(ctx, "p/account", "1"); ok || err != nil {
			t.Fatalf("fresh index: %v, %v", ok, err)
		}
		key := change.Row{{Name: "accountnumber", Value: change.Text("A-1")}, {Name: "region", Value: change.Int(3)}}
		if err := s.PutIDKeys(ctx, "p/account", []IDKey{{ID: "1", Key: key}, {ID: "2", Key: key[:1]}}); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.IDKey(ctx, "p/account", "1")
		if err != nil || !ok || fmt.Sprint(got) != fmt.Sprint(key) {
			t.Fatalf("IDKey = %v, %v, %v", got, ok, err)
		}
		if _, ok, _ := s.IDKey(ctx, "q/account", "1"); ok {
			t.Error("spaces are not apart")
		}
		if err := s.PutIDKeys(ctx, "p/account", []IDKey{{ID: "1"}}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.IDKey(ctx, "p/account", "1"); ok {
			t.Error("a forgotten id is still there")
		}
		if _, ok, _ := s.IDKey(ctx, "p/account", "2"); !ok {
			t.Error("forgetting one id forgot another")
		}
	})
}
