package config

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// SameIgnoringPos compares two values of the configuration model as their
// JSON without source positions ("pos"), so that moving lines in a file
// changes nothing. Values that do not encode compare by their Go syntax.
func SameIgnoringPos(a, b any) bool {
	norm := func(v any) any {
		j, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprintf("%#v", v)
		}
		var out any
		_ = json.Unmarshal(j, &out)
		return dropPos(out)
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func dropPos(v any) any {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "pos")
		for k, x := range t {
			t[k] = dropPos(x)
		}
	case []any:
		for i, x := range t {
			t[i] = dropPos(x)
		}
	}
	return v
}
