package logstore

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clients submitting at once, each waiting for its job to be durable
// before the next: the server's 16-client background submit load.
const clients = 16

var payload = make([]byte, 64)

func job(id uint64) storedJob {
	return storedJob{id: id, pri: priNormal, fn: "bench", data: payload}
}

// engine is one way to make a job durable: put blocks until job id is
// synced, and deletes job del (0: none) in the same commit or, for the
// log, with the next batch without waiting, as the server does.
type engine interface {
	put(id, del uint64) error
	commits() int64 // fsync'd commits so far
	close() error
}

// procIO returns the process's write_bytes (bytes sent to the disk).
func procIO() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type logEngine struct{ st *store }

func (e logEngine) put(id, del uint64) error {
	if del != 0 {
		e.st.del(del)
	}
	return e.st.wait(e.st.put(job(id)))
}
func (e logEngine) close() error   { return e.st.close() }
func (e logEngine) commits() int64 { return e.st.syncs.Load() }

type boltEngine struct {
	db    *bolt.DB
	batch bool
	last  *atomic.Uint64 // id of the last transaction seen
	txs   *atomic.Int64  // transactions seen
}

func (e boltEngine) commits() int64 { return e.txs.Load() }

var bucket = []byte("jobs")

func (e boltEngine) put(id, del uint64) error {
	key := binary.BigEndian.AppendUint64(nil, id)
	val := appendPut(nil, job(id)) // the same bytes the log writes
	f := func(tx *bolt.Tx) error {
		if id := uint64(tx.ID()); e.last.Swap(id) != id {
			e.txs.Add(1)
		}
		b := tx.Bucket(bucket)
		if del != 0 {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, del)); err != nil {
				return err
			}
		}
		return b.Put(key, val)
	}
	if e.batch {
		return e.db.Batch(f)
	}
	return e.db.Update(f)
}
func (e boltEngine) close() error { return e.db.Close() }

func openBolt(b *testing.B, batch bool, delay time.Duration, size int) engine {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "jobs.db"), 0o644, nil)
	if err != nil {
		b.Fatal(err)
	}
	db.MaxBatchDelay, db.MaxBatchSize = delay, size
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		b.Fatal(err)
	}
	return boltEngine{db: db, batch: batch, last: new(atomic.Uint64), txs: new(atomic.Int64)}
}

func BenchmarkEngine(b *testing.B) {
	engines := []struct {
		name string
		open func(b *testing.B) engine
	}{
		{"log", func(b *testing.B) engine {
			st, _, err := openStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return logEngine{st}
		}},
		{"bbolt-batch-default", func(b *testing.B) engine { return openBolt(b, true, 10*time.Millisecond, 1000) }},
		{"bbolt-batch-1ms-16", func(b *testing.B) engine { return openBolt(b, true, time.Millisecond, clients) }},
		{"bbolt-batch-200us-16", func(b *testing.B) engine { return openBolt(b, true, 200*time.Microsecond, clients) }},
		{"bbolt-update", func(b *testing.B) engine { return openBolt(b, false, 0, 0) }},
		{"bbolt-batch-100us-16", func(b *testing.B) engine { return openBolt(b, true, 100*time.Microsecond, clients) }},
	}
	for _, withDel := range []bool{false, true} {
		for _, en := range engines {
			name := en.name + "/submit"
			if withDel {
				name = en.name + "/submit+delete"
			}
			b.Run(name, func(b *testing.B) {
				e := en.open(b)
				defer e.close()
				var next atomic.Uint64
				var done atomic.Int64
				start, cpu0, io0, c0 := time.Now(), cpuTime(), procIO(), e.commits()
				var wg sync.WaitGroup
				n := int64(b.N)
				for range clients {
					wg.Go(func() {
						var prev uint64
						for done.Add(1) <= n {
							id := next.Add(1)
							del := uint64(0)
							if withDel {
								del = prev
							}
							if err := e.put(id, del); err != nil {
								b.Error(err)
								return
							}
							prev = id
						}
					})
				}
				wg.Wait()
				el := time.Since(start)
				b.ReportMetric(float64(b.N)/el.Seconds(), "jobs/s")
				b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(b.N), "cpu-µs/job")
				b.ReportMetric(float64(procIO()-io0)/float64(b.N), "disk-B/job")
				b.ReportMetric(float64(b.N)/float64(e.commits()-c0), "jobs/commit")
			})
		}
	}
}
