// Package driver is the plumbing shared by the Go client drivers of the
// compatibility matrix. It speaks the protocol that compat/drivers/common.py
// documents: a driver process performs one operation, reading one JSON
// request on stdin and printing one line "@@RESULT@@ {json}" on stdout.
// Clients may log to stdout too; the runner only trusts the marked line.
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"time"
)

const resultMark = "@@RESULT@@ "

// Debug (COMPAT_DEBUG=1) makes the drivers log the client's own
// debug output on stderr, which the matrix shows when an operation fails.
var Debug = os.Getenv("COMPAT_DEBUG") == "1"

// Request carries every field any operation uses; each operation reads the
// ones it needs (see compat/harness/scenarios.py for who sends what).
type Request struct {
	Op         string  `json:"op"`
	Timeout    float64 `json:"timeout"`
	Bootstrap  string  `json:"bootstrap"`
	Topic      string  `json:"topic"`
	Group      string  `json:"group"`
	Partition  int32   `json:"partition"`
	Partitions int     `json:"partitions"` // create_topic: count; group ops: partitions of the topic
	Count      int     `json:"count"`
	Offset     int64   `json:"offset"` // consume: where to start; group_reset "offset": the target

	Records     []InRecord `json:"records"`
	MoreRecords []InRecord `json:"more_records"`
	Codec       string     `json:"codec"`
	Idempotent  bool       `json:"idempotent"`

	Set    map[string]string `json:"set"`
	Delete []string          `json:"delete"`

	To        string   `json:"to"`
	By        int64    `json:"by"`
	Timestamp int64    `json:"timestamp"`
	Linger    *float64 `json:"linger"`

	Strategy string `json:"strategy"`
	Members  int    `json:"members"`

	start time.Time
}

// InRecord is a record to produce. A nil Partition lets the client's
// partitioner choose; a nil Timestamp lets the client stamp it.
type InRecord struct {
	Key       *string     `json:"key"`
	Value     *string     `json:"value"`
	Headers   [][]*string `json:"headers"`
	Partition *int32      `json:"partition"`
	Timestamp *int64      `json:"timestamp"`
}

// OutRecord is a consumed record as the harness compares it.
type OutRecord struct {
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp int64        `json:"timestamp"`
}

// Header is one record header in the client-neutral form.
type Header struct {
	Key   string
	Value []byte
}

// Bytes turns a JSON string (or null) into what a client sends.
func Bytes(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// Str turns bytes a client read into a JSON string, keeping nil as null.
// Invalid UTF-8 becomes U+FFFD when encoded, as in the Python drivers.
func Str(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// HeadersIn converts request header pairs [name, value-or-null].
func HeadersIn(pairs [][]*string) []Header {
	out := make([]Header, 0, len(pairs))
	for _, p := range pairs {
		if len(p) != 2 || p[0] == nil {
			continue
		}
		out = append(out, Header{Key: *p[0], Value: Bytes(p[1])})
	}
	return out
}

// Record builds an OutRecord.
func Record(partition int32, offset int64, key, value []byte, headers []Header, ts time.Time) OutRecord {
	hs := make([][2]*string, 0, len(headers))
	for _, h := range headers {
		k := h.Key
		hs = append(hs, [2]*string{&k, Str(h.Value)})
	}
	return OutRecord{Partition: partition, Offset: offset, Key: Str(key), Value: Str(value), Headers: hs,
		Timestamp: ts.UnixMilli()}
}

// Skip is returned by an operation the client cannot perform; the cell is
// then SKIPPED with this reason (never a failure).
type Skip string

func (s Skip) Error() string { return string(s) }

// Handler performs one operation and returns its JSON-able result.
type Handler func(ctx context.Context, req *Request) (any, error)

// Deadline is when the driver should give up by itself: a margin below the
// runner's hard kill, so the client's own error gets reported.
func (r *Request) Deadline() time.Time {
	t := r.Timeout
	if t == 0 {
		t = 30
	}
	return r.start.Add(time.Duration(max(1.0, t-2.0) * float64(time.Second)))
}

// Run reads the request on stdin, dispatches it and reports the outcome;
// it is a driver's whole main function.
func Run(handlers map[string]Handler) {
	os.Exit(run(handlers))
}

func run(handlers map[string]Handler) (code int) {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		emit(map[string]any{"error": "reading the request: " + err.Error()})
		return 1
	}
	req := &Request{start: time.Now()}
	if err := json.Unmarshal(input, req); err != nil {
		emit(map[string]any{"error": "bad request: " + err.Error()})
		return 1
	}
	h, ok := handlers[req.Op]
	if !ok {
		emit(map[string]any{"skip": fmt.Sprintf("operation %q not implemented by this driver", req.Op)})
		return 0
	}
	ctx, cancel := context.WithDeadline(context.Background(), req.Deadline())
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "panic: %v\n%s", p, debug.Stack())
			emit(map[string]any{"error": fmt.Sprintf("panic: %v", p)})
			code = 1
		}
	}()
	res, err := h(ctx, req)
	var skip Skip
	switch {
	case errors.As(err, &skip):
		emit(map[string]any{"skip": string(skip)})
	case err != nil:
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the driver's deadline of %.0fs passed)", err, req.Timeout-2)
		}
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		emit(map[string]any{"error": err.Error()})
		return 1
	default:
		if res == nil {
			res = map[string]any{}
		}
		emit(res)
	}
	return 0
}

func emit(result any) {
	b, err := json.Marshal(result)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": "cannot encode result: " + err.Error()})
	}
	fmt.Fprintf(os.Stdout, "\n%s%s\n", resultMark, b)
}

// ModuleVersion is the version of a dependency module compiled into this
// binary, for the probe operation.
func ModuleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range info.Deps {
		if m.Path == path {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}

// ResetTarget is where group_reset moves a partition's committed offset,
// computed on the client side as kafka-consumer-groups.sh --reset-offsets
// does. byTime is the first offset at or after req.Timestamp (-1: none).
func ResetTarget(req *Request, committed, earliest, latest, byTime int64) (int64, error) {
	clamp := func(o int64) int64 { return min(max(o, earliest), latest) }
	switch req.To {
	case "earliest":
		return earliest, nil
	case "latest":
		return latest, nil
	case "offset":
		return clamp(req.Offset), nil
	case "shift":
		return clamp(committed + req.By), nil
	case "datetime":
		if byTime < 0 { // no record at or after that time: the log end, as Kafka's tool does
			return latest, nil
		}
		return byTime, nil
	}
	return 0, fmt.Errorf("unknown reset %q", req.To)
}

// SortedInt32 returns a sorted copy.
func SortedInt32(s []int32) []int32 {
	out := append([]int32{}, s...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
