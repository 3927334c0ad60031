package kafka

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
)

// Environment of the child process of TestKilledMemberIsTakenOver.
const (
	childEnv   = "DVSYNC_KAFKA_TEST_CHILD"
	childAddrs = "DVSYNC_KAFKA_TEST_ADDRS"
)

const killGroup = "kill"

// runChild is a group member in a process of its own: it prints the
// position of every record it reads and acks each batch once printed,
// as the engine acks once the sink has written, until it is killed.
func runChild() int {
	k := &testenv.Kafka{Addrs: strings.Split(os.Getenv(childAddrs), ",")}
	s, err := New(testConfig(k, killGroup, Topic{Name: "rows"}), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	if err := s.Open(ctx, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	for {
		recs, err := s.Read(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		for _, r := range recs {
			fmt.Fprintf(out, "%s %s\n", r.Meta[MetaPartition], r.Meta[MetaOffset])
		}
		if err := out.Flush(); err != nil {
			return 2
		}
		if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// delivered collects the messages some member handed on, by partition
// and offset.
type delivered struct {
	mu   sync.Mutex
	seen map[string]int // "partition offset" -> times
	by   map[string]int // member -> records
}

func newDelivered() *delivered {
	return &delivered{seen: map[string]int{}, by: map[string]int{}}
}

func (d *delivered) add(member, id string) {
	d.mu.Lock()
	d.seen[id]++
	d.by[member]++
	d.mu.Unlock()
}

func (d *delivered) count(member string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.by[member]
}

func (d *delivered) distinct() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// consume reads s until ctx ends, recording what it reads as member and
// acking each batch at once.
func consume(ctx context.Context, t *testing.T, s *Source, member string, d *delivered) {
	for {
		recs, err := s.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("%s: Read: %v", member, err)
			}
			return
		}
		for _, r := range recs {
			d.add(member, r.Meta[MetaPartition]+" "+r.Meta[MetaOffset])
		}
		if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil && ctx.Err() == nil {
			t.Errorf("%s: Ack: %v", member, err)
		}
	}
}

// assigned returns how many partitions s holds now.
func assigned(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return 0
	}
	return len(s.assigned)
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, testTimeout, what, cond)
}

// produceNumbered writes n messages with values from..from+n-1, keyed over
// 20 keys.
func produceNumbered(t *testing.T, k *testenv.Kafka, from, n int) {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = msg("k"+strconv.Itoa((from+i)%20), fmt.Sprintf(`{"n":%d}`, from+i))
	}
	produce(t, k, "rows", msgs...)
}

// TestKilledMemberIsTakenOver runs two members of one group, one in a
// child process, lets them share the partitions, kills the child with
// SIGKILL mid-stream and checks that the survivor takes its partitions
// over from the committed offsets: every message is delivered by one of
// them.
func TestKilledMemberIsTakenOver(t *testing.T) {
	const perRound = 150
	k := testenv.StartKafka(t, "rows")
	d := newDelivered()
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()

	parent := openSource(t, testConfig(k, killGroup, Topic{Name: "rows"}))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); consume(ctx, t, parent, "parent", d) }()
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)
	waitFor(t, "the first member's assignment", func() bool { return assigned(parent) == 3 })

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", childAddrs+"="+strings.Join(k.Addrs, ","))
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
		}
		_ = child.Wait()
	})
	childDone := make(chan struct{})
	go func() {
		defer close(childDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.add("child", sc.Text())
		}
	}()
	waitFor(t, "the rebalance that gives the child partitions", func() bool {
		n := assigned(parent)
		return n > 0 && n < 3
	})

	produceNumbered(t, k, 0, perRound)
	waitFor(t, "both members to deliver", func() bool { return d.count("child") >= 10 && d.count("parent") >= 10 })
	if err := child.Process.Kill(); err != nil { // SIGKILL: no leave, no last commit
		t.Fatal(err)
	}
	killed = true
	<-childDone
	produceNumbered(t, k, perRound, perRound)

	// The survivor gets the child's partitions after the session times
	// out, and reads them from the child's last commit.
	waitFor(t, "every message to be delivered", func() bool { return d.distinct() == 2*perRound })
	waitFor(t, "the survivor to hold every partition", func() bool { return assigned(parent) == 3 })
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.seen {
		var p, off int
		if _, err := fmt.Sscanf(id, "%d %d", &p, &off); err != nil || p < 0 || p > 2 || off < 0 || off >= 2*perRound {
			t.Errorf("delivered %q, which was never produced", id)
		}
	}
	t.Logf("child delivered %d, parent %d, %d distinct of %d", d.by["child"], d.by["parent"], len(d.seen), 2*perRound)
}

// TestRebalanceDrainsBeforeHandingOver lets a second member join while
// the first holds records it has not acked. The first must stop handing
// on records, wait for the ack, commit, and only then give partitions up:
// afterwards nobody reads the acked records again, and the two members
// together read everything else.
func TestRebalanceDrainsBeforeHandingOver(t *testing.T) {
	const n = 200
	k := testenv.StartKafka(t, "rows")
	cfg := testConfig(k, "pair", Topic{Name: "rows"})
	cfg.MaxBatch = 20
	a := openSource(t, cfg)
	produceNumbered(t, k, 0, n)
	held, err := a.Read(testContext(t))
	if err != nil {
		t.Fatal(err)
	}

	b := openSource(t, cfg)
	waitFor(t, "the first member to drain", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.draining
	})
	// While it drains, the first member hands on nothing of the ending
	// generation, and the rebalance waits for it.
	noMore(t, a)
	if assigned(b) != 0 {
		t.Fatal("the second member got partitions before the first one finished")
	}
	ack(t, a, held[len(held)-1].Position)
	waitFor(t, "both members to hold partitions", func() bool {
		return assigned(a) > 0 && assigned(b) > 0 && assigned(a)+assigned(b) == 3
	})

	id := func(r change.Record) string { return r.Meta[MetaPartition] + " " + r.Meta[MetaOffset] }
	acked := map[string]bool{}
	for _, r := range held {
		acked[id(r)] = true
	}
	d := newDelivered()
	ctx, cancel := context.WithCancel(testContext(t))
	var wg sync.WaitGroup
	for name, s := range map[string]*Source{"a": a, "b": b} {
		wg.Add(1)
		go func() { defer wg.Done(); consume(ctx, t, s, name, d) }()
	}
	waitFor(t, "every unacked message to be delivered", func() bool { return d.distinct() >= n-len(held) })
	cancel()
	wg.Wait()
	for m := range d.seen {
		if acked[m] {
			t.Errorf("message %s was acked before the rebalance and delivered again", m)
		}
	}
	if d.distinct() != n-len(held) {
		t.Errorf("%d distinct messages after the rebalance, want %d", d.distinct(), n-len(held))
	}
}

// TestRebalanceDrainTimeout: records not acked within the drain timeout
// are read again by whoever holds their partitions next, and a late ack
// of them commits nothing.
func TestRebalanceDrainTimeout(t *testing.T) {
	const n = 60
	k := testenv.StartKafka(t, "rows")
	cfg := testConfig(k, "slow", Topic{Name: "rows"})
	cfg.DrainTimeout = 300 * time.Millisecond
	a := openSource(t, cfg)
	produceNumbered(t, k, 0, n)
	held, err := a.Read(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	b := openSource(t, cfg)
	waitFor(t, "both members to hold partitions", func() bool {
		return assigned(a) > 0 && assigned(b) > 0 && assigned(a)+assigned(b) == 3
	})
	ack(t, a, held[len(held)-1].Position) // too late: its generation is gone

	d := newDelivered()
	ctx, cancel := context.WithCancel(testContext(t))
	var wg sync.WaitGroup
	for name, s := range map[string]*Source{"a": a, "b": b} {
		wg.Add(1)
		go func() { defer wg.Done(); consume(ctx, t, s, name, d) }()
	}
	waitFor(t, "every message to be delivered after the rebalance", func() bool { return d.distinct() == n })
	cancel()
	wg.Wait()
}
