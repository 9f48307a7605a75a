// Package join is an example pipeline that joins two inputs of different
// formats on a key, as a SQL left join would: users.csv (with a header
// line) and orders.jsonl give each user's orders, one record per order,
// and a record with no order for a user who has none.
//
// Two map stages key each input's records by user id; the reduce stage
// needs both, so it gets each user's values grouped by the stage they
// came from (a cogroup), and flow.Join pairs them up.
package join

import (
	"context"
	"fmt"

	"github.com/gearflow/gearflow/flow"
)

// Register adds the example's functions to reg.
func Register(reg *flow.Registry) {
	reg.Map("join.key", Key)
	reg.CoGroup("join.user_orders", flow.Join(flow.LeftJoin, "users", "orders", UserOrder))
}

// Key emits a record under its user id: a row of users.csv (a map by the
// header's names) under its id, an order of orders.jsonl under its user.
// Which it is comes from the record's Source, the input's name.
func Key(ctx context.Context, rec flow.Record, emit flow.Emit) error {
	m, ok := rec.Value.(map[string]any)
	if !ok {
		// Retrying cannot mend a record that is not an object.
		return flow.Permanent(fmt.Errorf("want an object, got %T", rec.Value))
	}
	field := map[string]string{"users": "id", "orders": "user"}[rec.Source]
	if field == "" {
		return flow.Permanent(fmt.Errorf("unknown input %q", rec.Source))
	}
	id, ok := m[field].(string)
	if !ok || id == "" {
		return flow.Permanent(fmt.Errorf("no %s", field))
	}
	return emit(id, m)
}

// UserOrder joins a user and one of their orders (nil when they have
// none) into one output record.
func UserOrder(ctx context.Context, id string, user, order any, emit flow.Emit) error {
	u, _ := user.(map[string]any)
	out := map[string]any{"name": u["name"], "country": u["country"]}
	if o, ok := order.(map[string]any); ok {
		out["order"], out["item"], out["amount"] = o["order"], o["item"], o["amount"]
	}
	return emit(id, out)
}
