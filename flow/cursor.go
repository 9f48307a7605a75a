package flow

import (
	"fmt"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// cursorRecord reads one [key, value] record.
func cursorRecord(c *msgp.Cursor) (rawRecord, error) {
	n, err := c.ArrayLen()
	if err != nil {
		return rawRecord{}, err
	}
	if n != 2 {
		return rawRecord{}, fmt.Errorf("a record is [key, value], got %d elements", n)
	}
	k, err := c.Str()
	if err != nil {
		return rawRecord{}, err
	}
	v, err := c.Raw()
	if err != nil {
		return rawRecord{}, err
	}
	return rawRecord{Key: k, Value: v}, nil
}
