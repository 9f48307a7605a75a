package protocol_test

import (
	"bytes"
	"fmt"

	"github.com/gearflow/gearflow/protocol"
)

// Encode a SUBMIT_JOB the way a client sends it and read it back the way
// a server does.
func Example() {
	wire := protocol.AppendPacket(nil, protocol.Req, protocol.SubmitJob,
		[]byte("reverse"), []byte("job-1"), []byte("hello"))
	fmt.Printf("%q\n", wire)

	r := protocol.NewReader(bytes.NewReader(wire), protocol.ReaderConfig{})
	p, err := r.ReadPacket()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s function=%s unique=%s data=%s\n", p.Magic, p.Type, p.Arg(0), p.Arg(1), p.Arg(2))
	// Output:
	// "\x00REQ\x00\x00\x00\a\x00\x00\x00\x13reverse\x00job-1\x00hello"
	// REQ SUBMIT_JOB function=reverse unique=job-1 data=hello
}

// A server reads admin text lines and binary packets from one stream.
func ExampleReader_ReadPacket_text() {
	in := []byte("status\r\n")
	in = protocol.AppendPacket(in, protocol.Req, protocol.EchoReq, []byte("ping"))
	r := protocol.NewReader(bytes.NewReader(in), protocol.ReaderConfig{AllowText: true})
	for range 2 {
		p, err := r.ReadPacket()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %q\n", p.Type, p.Arg(0))
	}
	// Output:
	// TEXT "status"
	// ECHO_REQ "ping"
}

func ExampleParseAdminCommand() {
	for _, line := range []string{"cancel job H:host:42", "SHOW jobs", "show", "create function"} {
		c, err := protocol.ParseAdminCommand([]byte(line))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-22q %-16s %q %q\n", line, c.Kind, c.Args, protocol.AppendAdminReplyError(nil, c))
	}
	// Output:
	// "cancel job H:host:42" cancel job       ["H:host:42"] ""
	// "SHOW jobs"            show jobs        [] ""
	// "show"                 unknown          [] "ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"
	// "create function"      bad arguments    [] "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"
}
