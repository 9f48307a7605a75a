// Package protocol is the Gearman wire protocol: binary packets and the
// admin text protocol that shares their port.
//
// A Packet is a magic (Req or Res), a Type and its arguments. Each Type
// knows its name and how its body splits into arguments (Type.NumArgs,
// Type.HasData), following libgearman's framing table: the last argument
// of a type without data runs to the end of the body unterminated.
//
// Reader reads packets from a stream. It checks every announced size
// against a limit before it allocates, reuses one buffer (a returned
// packet is valid until the next read), and reports malformed input as
// error values, never panics; after ErrMalformed the stream is still in
// sync. Encoding is append-style (Packet.Append, AppendPacket) so a
// server can encode straight into a connection's outbox.
//
// ParseAdminCommand parses a line of the admin text protocol into an
// AdminCommand; the Append* helpers produce gearmand's exact reply bytes.
//
// The package uses only the standard library and starts no goroutines.
// The protocol itself, and gearmand's behaviour, are described in the
// project's shared PROTOCOL.md.
package protocol
