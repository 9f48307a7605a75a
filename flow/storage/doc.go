// Package storage is flow's data plane: the places that hold a run's input,
// its shuffle files and its output, named by URI.
//
// A [Store] is a flat namespace of objects named by slash-separated keys
// ("run1/map/task-3/attempt-1/part-00002") relative to the store's root.
// Two kinds exist:
//
//   - file: a folder on a local disk, or on a shared filesystem (NFS)
//     mounted at the same path on every worker: "file:///data/run",
//     "file:rel/path", or a plain path ("/data/run", "data").
//   - s3: a bucket and prefix on any S3-compatible object store:
//     "s3://bucket/prefix".
//
// [Open] turns a URI into a Store; [Split] cuts a URI holding a glob into
// the store's root and the pattern to [Store.List]; [Join] appends key
// elements to a URI.
//
// # Objects and keys
//
// A key is relative and clean: no leading or trailing slash, no empty, "."
// or ".." element (the rule of [io/fs.ValidPath]). Objects are written
// whole through a [Writer] and become visible only when it commits, so a
// reader never sees half an object, and an attempt that dies leaves
// nothing behind under its key. Folders are not objects: Stat of a folder
// reports [fs.ErrNotExist] and List never returns one.
//
// # Globs
//
// List takes a pattern over keys: '*' matches any run of characters but
// '/', '?' one character but '/', '[a-z]' and '[^a-z]' a class, '\' escapes
// the next character, '{a,b}' either alternative (alternatives may nest and
// hold '/'), and a whole element "**" any number of elements, none
// included, but at least one at the end ("a/**" matches the keys under
// "a/", not "a"). Names starting with '.' are hidden: '*', '?', classes and "**"
// never match them; an element of the pattern that itself starts with a
// literal '.' does ("logs/.*", "**/.keep").
//
// # Reading inputs
//
// [OpenInput] reads a whole object, decompressing ".gz" and ".zst" ones.
// [OpenSplit] reads the lines of one byte range of an object, under the
// rule that a line belongs to the split holding its first byte, so any
// set of splits covering an object reads each of its lines exactly once.
//
// # S3 settings
//
// The s3 store takes its settings from the environment, as S3 tools do:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (without
// them, the shared credentials file and then the instance's role are
// tried), AWS_REGION (or AWS_DEFAULT_REGION; us-east-1 when a custom
// endpoint is set, looked up from the bucket otherwise),
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL ("http://host:port" or
// "https://host" for a store other than AWS), and AWS_S3_FORCE_PATH_STYLE
// ("true" or "false"; path-style addressing is the default with a custom
// endpoint). The settings are read once, by Open.
//
// An s3 Writer keeps an object of up to 1 MiB in memory and sends it with
// one PUT on Commit; a larger one streams as a multipart upload of 16 MiB
// parts, so each such Writer holds up to 16 MiB, and objects up to 156 GiB
// can be written. Cancelling a Writer's context fails its upload; the
// store may then keep the unfinished upload's parts until a bucket
// lifecycle rule removes them, whereas Abort removes them at once.
package storage
