package stripetest

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
)

// stripeOrder renders a map as Stripe writes its JSON: "id" and "object"
// first, then the other members in alphabetical order, and nested maps
// likewise. (encoding/json alone would sort "id" and "object" among the
// rest.)
type stripeOrder map[string]any

func (m stripeOrder) MarshalJSON() ([]byte, error) {
	var keys []string
	for _, k := range []string{"id", "object"} {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "id" && k != "object" {
			keys = append(keys, k)
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(inStripeOrder(m[k]))
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// inStripeOrder returns v with its maps rendered in Stripe's member order.
func inStripeOrder(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return stripeOrder(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = inStripeOrder(x)
		}
		return out
	}
	return v
}
