package opshttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthReportsEachCheck(t *testing.T) {
	s := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.AddCheck("store", func(context.Context) error { return nil })
	ready := false
	s.AddCheck("component", func(context.Context) error {
		if !ready {
			return errors.New("not connected")
		}
		return nil
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("unready: %d %s", code, body)
	}
	ready = true
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"component":"ok"`) {
		t.Fatalf("ready: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d", code)
	}
}
