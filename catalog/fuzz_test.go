package catalog_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/scripthost/scripthost/model"
)

// FuzzCatalogBodies feeds arbitrary bodies to the decoders of the catalog's
// create and update requests, as the service does: they never panic, they
// fail only with bad-request errors, and what they accept is complete and
// survives a round trip.
func FuzzCatalogBodies(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `1`, `{"name":"a.py","code":"print(1)"}`,
		`{"name":"a.py","code":"x"} {}`, `{"name":1}`, `{"code":null}`, `{"code":"x","extra":true}`,
		`{"name":"../a.py","code":""}`, `{"name":"a.py","code":"\u0000\ud800"}`, `{"code":`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		create, err := model.DecodeCreate(body)
		if err != nil {
			if !errors.Is(err, model.ErrBadRequest) || model.Message(err) == "" {
				t.Fatalf("DecodeCreate(%q) = %v, not a bad request with a message", body, err)
			}
		} else {
			if create.Name == nil || create.Code == nil {
				t.Fatalf("DecodeCreate(%q) accepted a request without name or code", body)
			}
			if err := model.ValidateName(*create.Name); err != nil && !errors.Is(err, model.ErrBadRequest) {
				t.Fatalf("ValidateName(%q) = %v", *create.Name, err)
			}
			again, _ := json.Marshal(create)
			back, err := model.DecodeCreate(again)
			if err != nil || *back.Name != *create.Name || *back.Code != *create.Code {
				t.Fatalf("round trip of %q: %+v, %v", again, back, err)
			}
		}
		update, err := model.DecodeUpdate(body)
		if err != nil {
			if !errors.Is(err, model.ErrBadRequest) || model.Message(err) == "" {
				t.Fatalf("DecodeUpdate(%q) = %v, not a bad request with a message", body, err)
			}
		} else if update.Code == nil {
			t.Fatalf("DecodeUpdate(%q) accepted a request without code", body)
		}
	})
}
