package protocol_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

type readSeed struct {
	data  []byte
	text  bool
	split uint16
}

// readPacketSeeds are real packets of every type, pipelined streams,
// admin lines mixed with packets, and the malformed inputs the reader
// must survive.
func readPacketSeeds() []readSeed {
	var seeds []readSeed
	add := func(text bool, split uint16, parts ...[]byte) {
		seeds = append(seeds, readSeed{bytes.Join(parts, nil), text, split})
	}
	pk := protocol.AppendPacket
	for _, tc := range typeTable {
		add(false, 13, pk(nil, protocol.Req, tc.t, sampleArgs(tc.t)...))
	}
	// A worker and a client session as libgearman sends them.
	add(false, 20,
		pk(nil, protocol.Req, protocol.SetClientID, []byte("worker-1")),
		pk(nil, protocol.Req, protocol.CanDo, []byte("reverse")),
		pk(nil, protocol.Req, protocol.CanDoTimeout, []byte("slow"), []byte("5000")),
		pk(nil, protocol.Req, protocol.GrabJobAll),
		pk(nil, protocol.Req, protocol.PreSleep))
	add(false, 5,
		pk(nil, protocol.Res, protocol.Noop),
		pk(nil, protocol.Res, protocol.JobAssignUniq, []byte("H:host:1"), []byte("reverse"), []byte("u-1"), []byte("hello")),
		pk(nil, protocol.Req, protocol.WorkStatus, []byte("H:host:1"), []byte("1"), []byte("2")),
		pk(nil, protocol.Req, protocol.WorkData, []byte("H:host:1"), []byte("\x00part\x00")),
		pk(nil, protocol.Req, protocol.WorkComplete, []byte("H:host:1"), []byte("olleh")))
	add(false, 40,
		pk(nil, protocol.Req, protocol.OptionReq, []byte("exceptions")),
		pk(nil, protocol.Req, protocol.SubmitJob, []byte("reverse"), []byte(""), []byte("hello")),
		pk(nil, protocol.Req, protocol.SubmitReduceJob, []byte("map"), []byte("u"), []byte("reduce"), []byte(""), []byte("data")),
		pk(nil, protocol.Req, protocol.GetStatusUnique, []byte("u")),
		pk(nil, protocol.Res, protocol.StatusResUnique, []byte("u"), []byte("1"), []byte("1"), []byte("3"), []byte("4"), []byte("1")),
		pk(nil, protocol.Res, protocol.Error, []byte("QUEUE_ERROR"), []byte("Job queue is full")))
	// Admin lines, alone and mixed with packets.
	add(true, 3, []byte("status\r\nworkers\n"), pk(nil, protocol.Req, protocol.EchoReq, []byte("ping")), []byte("show unique jobs\r\n"))
	add(true, 0, []byte("cancel job H:host:1\r\nmaxqueue f 1 2 3\nversion\r\n\r\n\n"))
	add(true, 7, []byte(strings.Repeat("x", 600)+"\n"))
	add(true, 1, []byte("getpid"))
	// Malformed input.
	add(false, 6, raw(protocol.Req, protocol.CanDo, "rev\x00"), raw(protocol.Req, protocol.SubmitJob, "f\x00u"), raw(protocol.Req, protocol.Noop, ""))
	add(false, 12, raw(protocol.Req, protocol.SubmitReduceJobBackground, "f\x00u\x00r\x00d"), raw(protocol.Req, protocol.GrabJob, "x"))
	add(false, 2, rawSize(protocol.Req, protocol.EchoReq, 1<<20-1, "abc"))
	add(false, 2, rawSize(protocol.Req, protocol.EchoReq, 1<<31, ""))
	add(false, 4, raw(protocol.Req, 0, ""), raw(protocol.Req, 43, ""))
	add(false, 4, []byte("\x00REX\x00\x00\x00\x06\x00\x00\x00\x00"))
	add(true, 9, raw(protocol.Res, protocol.WorkData, "H:1\x00"), []byte("status\n"))
	add(false, 0, nil)
	return seeds
}

func adminSeeds() []string {
	return []string{
		"workers", "status", "prioritystatus", "show jobs", "show unique jobs", "show maxqueue",
		"show", "show things", "cancel job H:host:1", "cancel a b", "cancel job",
		"create function reverse", "create function", "drop function reverse", "drop x",
		"maxqueue reverse", "maxqueue reverse 10", "maxqueue reverse 1 2 3", "maxqueue",
		"getpid", "verbose", "version", "VERSION", "shutdown", "shutdown graceful", "shutdown now",
		"", " status", "show jobs ", "a b c d e", "a b c d e f", "cancel  job  H:1", "status\x00x",
	}
}

func corpusFile(dir string, values ...string) (string, []byte) {
	content := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
	sum := sha256.Sum256([]byte(content))
	return filepath.Join("testdata", "fuzz", dir, hex.EncodeToString(sum[:8])), []byte(content)
}

// TestFuzzCorpus checks that the seed corpus under testdata/fuzz holds
// every seed above; GEARFLOW_WRITE_CORPUS=1 writes the missing ones.
func TestFuzzCorpus(t *testing.T) {
	t.Parallel()
	write := os.Getenv("GEARFLOW_WRITE_CORPUS") == "1"
	var files [][2]string
	for _, s := range readPacketSeeds() {
		name, content := corpusFile("FuzzReadPacket",
			"[]byte("+strconv.Quote(string(s.data))+")", fmt.Sprintf("bool(%v)", s.text), fmt.Sprintf("uint16(%d)", s.split))
		files = append(files, [2]string{name, string(content)})
	}
	for _, s := range adminSeeds() {
		name, content := corpusFile("FuzzAdminCommand", "[]byte("+strconv.Quote(s)+")")
		files = append(files, [2]string{name, string(content)})
	}
	for _, f := range files {
		got, err := os.ReadFile(f[0])
		if err == nil && string(got) == f[1] {
			continue
		}
		if !write {
			t.Errorf("seed %s missing or stale (run with GEARFLOW_WRITE_CORPUS=1)", f[0])
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f[0]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[0], []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
