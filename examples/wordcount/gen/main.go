// Command gen writes a deterministic text for the wordcount benchmark
// (../bench.sh): lines of 5 to 15 words drawn from a vocabulary of
// random lower-case words with a Zipf distribution, some lines starting
// with a capital and ending with a full stop, a few words with an
// apostrophe or made of digits. The same -seed and -size give the same
// bytes on every machine.
//
//	gen [-size 200MB] [-seed 1] [-vocab 50000] > input.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

func main() {
	size := flag.String("size", "200MB", "bytes to write: a number with an optional KB, MB or GB suffix (powers of 1000)")
	seed := flag.Uint64("seed", 1, "random seed")
	vocab := flag.Int("vocab", 50000, "distinct words in the vocabulary")
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil || *vocab < 1 {
		fmt.Fprintln(os.Stderr, "gen: bad -size or -vocab")
		os.Exit(2)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	if err := generate(w, n, *seed, *vocab); err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// generate writes at least size bytes of whole lines to w.
func generate(w *bufio.Writer, size int64, seed uint64, vocab int) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := make([]string, vocab)
	for i := range words {
		var b strings.Builder
		for j, n := 0, 2+r.IntN(9); j < n; j++ {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		switch x := r.IntN(100); {
		case x == 0:
			b.WriteString("'s")
		case x == 1:
			b.Reset()
			b.WriteString(strconv.Itoa(r.IntN(10000)))
		}
		words[i] = b.String()
	}
	zipf := rand.NewZipf(r, 1.1, 1, uint64(vocab-1))
	var line []byte
	for written := int64(0); written < size; {
		line = line[:0]
		n := 5 + r.IntN(11)
		sentence := r.IntN(5) == 0
		for i := 0; i < n; i++ {
			if i > 0 {
				line = append(line, ' ')
			}
			word := words[zipf.Uint64()]
			if sentence && i == 0 && word[0] >= 'a' && word[0] <= 'z' {
				line = append(line, word[0]-'a'+'A')
				word = word[1:]
			}
			line = append(line, word...)
		}
		if sentence {
			line = append(line, '.')
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
		written += int64(len(line))
	}
	return nil
}
