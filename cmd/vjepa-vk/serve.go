package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/vjepa-vk/vjepa-vk/serve"
	"github.com/vjepa-vk/vjepa-vk/train"
	"github.com/vjepa-vk/vjepa-vk/vk"
)

// runServe keeps the world model on the device behind the HTTP JSON API of package serve until SIGINT
// or SIGTERM, then stops accepting, lets the requests in flight finish and exits 0.
func runServe(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	wf := addWorldFlags(fs)
	cf := addCEMFlags(fs)
	gf := addGDFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	queue := fs.Int("queue", 4, "requests that may wait for the device; more are answered 503")
	timeout := fs.Duration("timeout", 2*time.Minute, "deadline of a request, waiting included (504 past it)")
	maxBodyMiB := fs.Int("max-body-mib", 32, "largest request body in MiB (413 above)")
	goalCache := fs.Int("goal-cache", 16, "encoded goal images kept (by content)")
	drain := fs.Duration("drain", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may take to finish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments %v", fs.Args())
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{{"--queue", *queue >= 1}, {"--timeout", *timeout > 0}, {"--max-body-mib", *maxBodyMiB >= 1}, {"--goal-cache", *goalCache >= 0},
		{"--drain", *drain > 0}} {
		if !c.ok {
			return usageErrorf("%s: want a positive value", c.name)
		}
	}
	opts, err := wf.options("serve")
	if err != nil {
		return err
	}
	cfg, err := wf.load("serve")
	if err != nil {
		return err
	}
	_, actionWidth, _, err := wf.widths(cfg)
	if err != nil {
		return commandError("serve", err)
	}
	st, err := cf.settings("serve", actionWidth)
	if err != nil {
		return err
	}
	planner, gd, err := gf.settings()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer ln.Close()

	d, err := vk.Open(vk.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	w, closeW, err := train.OpenWorldModel(d, cfg, opts)
	if err != nil {
		return err
	}
	defer closeW()
	sc := serve.DefaultConfig()
	sc.Planner, sc.Settings, sc.GD = planner, st, gd
	sc.Queue, sc.Timeout, sc.MaxBody, sc.GoalCache = *queue, *timeout, int64(*maxBodyMiB)<<20, *goalCache
	sc.Log = log.New(os.Stderr, "", log.LstdFlags)
	sc.Normalization = w.Normalization()
	sc.Info = map[string]any{"device": d.Info.Name, "config": cfg.Source(), "weights": cfg.Model.Checkpoint,
		"adapter": *wf.adapter, "merged": *wf.merge, "precision": cfg.Model.Precision}
	srv, err := serve.New(w, sc)
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: *timeout + time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: sc.Log}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Printf("serving %s on %s at http://%s (POST /plan, GET /healthz, GET /info)\n", cfg.Source(), d.Info.Name, ln.Addr())
	printNormalization(sc.Normalization)
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Println("shutting down: finishing the requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: shut down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Println("stopped")
	return nil
}
