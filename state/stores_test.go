package state

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dvsync/dvsync/internal/testenv"
)

// TestMain shares one PostgreSQL cluster among the package's tests.
func TestMain(m *testing.M) { testenv.Main(m) }

// opener opens one particular store: each call opens the same file or
// schema again, as a restarted process would.
type opener func() (Store, error)

// must opens the store, failing the test on error, and closes it when
// the test ends (closing twice is harmless).
func (o opener) must(t *testing.T) Store {
	t.Helper()
	s, err := o()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachStore runs test once per Store implementation, each time on a fresh,
// empty store: a bbolt file in a temporary folder, and a schema in a new
// PostgreSQL database.
func eachStore(t *testing.T, test func(t *testing.T, open opener)) {
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		test(t, func() (Store, error) { return OpenBolt(path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
		test(t, func() (Store, error) { return OpenPostgres(context.Background(), dsn, "dvsync state") })
	})
}
