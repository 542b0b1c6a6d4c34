package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/danstream/danstream/transport"
)

func init() {
	commands["healthcheck"] = command{"probe a running server's /healthz (Kubernetes exec probes; token in $DANSTREAM_HEALTH_TOKEN)", runHealthcheck}
}

func runHealthcheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "the server's /healthz")
	live := fs.Bool("live", false, "liveness: a 503 (a stream in error) passes too; only no answer fails")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := fs.Bool("insecure", false, "skip TLS verification (for https://127.0.0.1)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	body, err := transport.CheckHealth(ctx, *url, os.Getenv("DANSTREAM_HEALTH_TOKEN"), *live, *insecure)
	if errors.Is(err, transport.ErrHealthUnauthorized) {
		return fmt.Errorf("%w: set DANSTREAM_HEALTH_TOKEN to a token of the config's auth block", err)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", body)
	return nil
}
