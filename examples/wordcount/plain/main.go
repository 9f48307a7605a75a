// Command plain counts the words of a text file in one process, with no
// framework: it is the single-process baseline the wordcount flow
// benchmark (../bench.sh) compares gearflow against. It tokenises
// exactly as the example's map function does (lower-cased runs of
// letters, digits and apostrophes, apostrophes trimmed), counts in a
// map, and writes "word<TAB>count" lines sorted by word, the same bytes
// as the pipeline's TSV output.
//
//	plain INPUT OUTPUT
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: plain INPUT OUTPUT")
		os.Exit(2)
	}
	if err := count(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "plain:", err)
		os.Exit(1)
	}
}

func count(input, output string) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	counts := map[string]int64{}
	for sc.Scan() {
		words := strings.FieldsFunc(strings.ToLower(sc.Text()), func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
		})
		for _, w := range words {
			w = strings.Trim(w, "'")
			if w != "" {
				counts[w]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out, err := os.Create(output)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	for _, k := range keys {
		fmt.Fprintf(bw, "%s\t%d\n", k, counts[k])
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
