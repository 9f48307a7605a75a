package protocol_test

import (
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// typeTable is PROTOCOL.md §2: number, name, (argc, data) framing, and
// whether the type is server-only or a job submission.
var typeTable = []struct {
	t        protocol.Type
	name     string
	argc     int
	data     bool
	response bool
	submit   bool
}{
	{1, "CAN_DO", 1, false, false, false},
	{2, "CANT_DO", 1, false, false, false},
	{3, "RESET_ABILITIES", 0, false, false, false},
	{4, "PRE_SLEEP", 0, false, false, false},
	{5, "UNUSED", 0, false, false, false},
	{6, "NOOP", 0, false, true, false},
	{7, "SUBMIT_JOB", 2, true, false, true},
	{8, "JOB_CREATED", 1, false, true, false},
	{9, "GRAB_JOB", 0, false, false, false},
	{10, "NO_JOB", 0, false, true, false},
	{11, "JOB_ASSIGN", 2, true, true, false},
	{12, "WORK_STATUS", 3, false, false, false},
	{13, "WORK_COMPLETE", 1, true, false, false},
	{14, "WORK_FAIL", 1, false, false, false},
	{15, "GET_STATUS", 1, false, false, false},
	{16, "ECHO_REQ", 0, true, false, false},
	{17, "ECHO_RES", 0, true, true, false},
	{18, "SUBMIT_JOB_BG", 2, true, false, true},
	{19, "ERROR", 2, false, true, false},
	{20, "STATUS_RES", 5, false, true, false},
	{21, "SUBMIT_JOB_HIGH", 2, true, false, true},
	{22, "SET_CLIENT_ID", 1, false, false, false},
	{23, "CAN_DO_TIMEOUT", 2, false, false, false},
	{24, "ALL_YOURS", 0, false, false, false},
	{25, "WORK_EXCEPTION", 1, true, false, false},
	{26, "OPTION_REQ", 1, false, false, false},
	{27, "OPTION_RES", 1, false, true, false},
	{28, "WORK_DATA", 1, true, false, false},
	{29, "WORK_WARNING", 1, true, false, false},
	{30, "GRAB_JOB_UNIQ", 0, false, false, false},
	{31, "JOB_ASSIGN_UNIQ", 3, true, true, false},
	{32, "SUBMIT_JOB_HIGH_BG", 2, true, false, true},
	{33, "SUBMIT_JOB_LOW", 2, true, false, true},
	{34, "SUBMIT_JOB_LOW_BG", 2, true, false, true},
	{35, "SUBMIT_JOB_SCHED", 7, true, false, true},
	{36, "SUBMIT_JOB_EPOCH", 3, true, false, true},
	{37, "SUBMIT_REDUCE_JOB", 4, true, false, true},
	{38, "SUBMIT_REDUCE_JOB_BACKGROUND", 4, true, false, true},
	{39, "GRAB_JOB_ALL", 0, false, false, false},
	{40, "JOB_ASSIGN_ALL", 4, true, true, false},
	{41, "GET_STATUS_UNIQUE", 1, false, false, false},
	{42, "STATUS_RES_UNIQUE", 6, false, true, false},
}

func TestTypeTable(t *testing.T) {
	t.Parallel()
	if len(typeTable) != int(protocol.MaxType) {
		t.Fatalf("table has %d rows, MaxType = %d", len(typeTable), protocol.MaxType)
	}
	for i, tc := range typeTable {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if int(tc.t) != i+1 {
				t.Fatalf("row %d has type %d", i, tc.t)
			}
			wantArgs := tc.argc
			if tc.data {
				wantArgs++
			}
			if got := tc.t.NumArgs(); got != wantArgs {
				t.Errorf("NumArgs = %d, want %d", got, wantArgs)
			}
			if got := tc.t.HasData(); got != tc.data {
				t.Errorf("HasData = %v, want %v", got, tc.data)
			}
			if got := tc.t.String(); got != tc.name {
				t.Errorf("String = %q, want %q", got, tc.name)
			}
			if got := tc.t.IsResponse(); got != tc.response {
				t.Errorf("IsResponse = %v, want %v", got, tc.response)
			}
			if got := tc.t.IsSubmit(); got != tc.submit {
				t.Errorf("IsSubmit = %v, want %v", got, tc.submit)
			}
			if !tc.t.Valid() {
				t.Errorf("Valid = false")
			}
		})
	}
}

func TestTypeOutOfRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t     protocol.Type
		name  string
		valid bool
	}{
		{protocol.Text, "TEXT", false},
		{43, "Type(43)", false},
		{1 << 31, "Type(2147483648)", false},
		{^protocol.Type(0), "Type(4294967295)", false},
	}
	for _, tc := range tests {
		if got := tc.t.String(); got != tc.name {
			t.Errorf("Type(%d).String() = %q, want %q", uint32(tc.t), got, tc.name)
		}
		if got := tc.t.Valid(); got != tc.valid {
			t.Errorf("Type(%d).Valid() = %v", uint32(tc.t), got)
		}
		if tc.t > protocol.MaxType {
			if tc.t.NumArgs() != 0 || tc.t.HasData() || tc.t.IsResponse() || tc.t.IsSubmit() {
				t.Errorf("Type(%d) claims a framing", uint32(tc.t))
			}
		}
	}
	if protocol.Req.String() != "REQ" || protocol.Res.String() != "RES" || protocol.Magic(0).String() != "BAD" {
		t.Errorf("Magic.String: %s %s %s", protocol.Req, protocol.Res, protocol.Magic(0))
	}
}
