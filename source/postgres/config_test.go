package postgres

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{DSN: "postgres://x@h/db", Tables: []string{"public.a", `"Sales"."Orders"`}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if d := ok.withDefaults(); d.Slot != "dvsync" || d.Publication != "dvsync" || d.StatusInterval != 10*time.Second ||
		d.HeartbeatInterval != 30*time.Second || d.DecodingWorkMem != "64MB" {
		t.Errorf("defaults: %+v", d)
	}

	bad := Config{
		DSN:             "postgres://user:hunter2@h/db",
		Slot:            "Bad-Slot",
		Publication:     "p q",
		Tables:          []string{"customers", "public.a", "public.a"},
		StatusInterval:  -time.Second,
		DecodingWorkMem: "lots",
		Keys:            map[string][]string{"public.b": {"x"}, "public.a": {"x", "", "x"}},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config passed")
	}
	for _, want := range []string{"slot:", "publication:", "tables[0]:", "tables[2]:", "status_interval:", "logical_decoding_work_mem:",
		`keys: "public.b" is not one of tables`, "keys: public.a[1]: empty column name", "keys: public.a[2]: column x is listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error reveals the DSN's password:\n%v", err)
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "dsn: required") || !strings.Contains(err.Error(), "tables:") {
		t.Errorf("empty config: %v", err)
	}
	if _, err := New(bad, nil); err == nil {
		t.Error("New accepted an invalid config")
	}
}
