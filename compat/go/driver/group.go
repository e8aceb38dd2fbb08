package driver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Members in the assignors scenario heartbeat often, so a rebalance reaches
// every member quickly (the clients' defaults are about 3 s).
const HeartbeatInterval = 300 * time.Millisecond

// How long an assignment must stay unchanged before it counts as settled.
const settleTime = time.Second

// Member is one consumer-group member running by itself. Each client
// driver implements it around a MemberState; every member commits each
// record it reads before counting it as done.
type Member interface {
	State() *MemberState
	Stop()                // leave the group (asynchronously)
	Wait(d time.Duration) // until the member has closed, at most d
}

// MemberState is what a member has done so far, safe to update from the
// client's callbacks and to read from the driver.
type MemberState struct {
	mu      sync.Mutex
	owned   map[int32]bool
	revoked []int32
	records []OutRecord
	done    int
	err     error
}

func (s *MemberState) Assigned(ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owned == nil {
		s.owned = map[int32]bool{}
	}
	for _, p := range ps {
		s.owned[p] = true
	}
}

func (s *MemberState) Revoked(ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		delete(s.owned, p)
	}
	s.revoked = append(s.revoked, ps...)
}

// Read records a consumed record (not yet committed).
func (s *MemberState) Read(r OutRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, r)
}

// Committed says every record read so far is committed.
func (s *MemberState) Committed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = len(s.records)
}

// Fail keeps the member's first error.
func (s *MemberState) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

type snapshot struct {
	owned, revoked []int32
	records        []OutRecord
	done           int
	err            error
}

func (s *MemberState) snap() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	owned := make([]int32, 0, len(s.owned))
	for p := range s.owned {
		owned = append(owned, p)
	}
	return snapshot{SortedInt32(owned), append([]int32{}, s.revoked...), append([]OutRecord{}, s.records...),
		s.done, s.err}
}

// NewMember starts one member of req.Group on req.Topic using the
// assignment strategy req.Strategy ("" for the client's default).
type NewMember func(req *Request) (Member, error)

// Produce sends records to req.Topic (the driver's produce operation).
type Produce func(ctx context.Context, req *Request, records []InRecord) error

type group struct {
	req     *Request
	members []Member
}

func (g *group) trouble() error {
	var msgs []string
	for i, m := range g.members {
		if err := m.State().snap().err; err != nil {
			msgs = append(msgs, fmt.Sprintf("member %d: %v", i, err))
		}
	}
	if msgs == nil {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

func (g *group) owned() [][]int32 {
	out := make([][]int32, len(g.members))
	for i, m := range g.members {
		out[i] = m.State().snap().owned
	}
	return out
}

// balanced: every member owns something, together they own each partition
// exactly once, and no member owns more than one partition above another.
func balanced(owned [][]int32, partitions int) bool {
	var all []int32
	lo, hi := partitions+1, -1
	for _, o := range owned {
		if len(o) == 0 {
			return false
		}
		all = append(all, o...)
		lo, hi = min(lo, len(o)), max(hi, len(o))
	}
	all = SortedInt32(all)
	if len(all) != partitions {
		return false
	}
	for i, p := range all {
		if int(p) != i {
			return false
		}
	}
	return hi-lo <= 1
}

func sameSplit(a, b [][]int32) bool {
	return slices.EqualFunc(a, b, func(x, y []int32) bool { return slices.Equal(x, y) })
}

// settle waits until the members' split is balanced and has not changed for
// settleTime.
func (g *group) settle() ([][]int32, error) {
	var last [][]int32
	var since time.Time
	for {
		now := g.owned()
		if !sameSplit(now, last) || !balanced(now, g.req.Partitions) {
			last, since = now, time.Now()
		} else if time.Since(since) >= settleTime {
			return now, nil
		}
		if err := g.trouble(); err != nil {
			return nil, err
		}
		if time.Now().After(g.req.Deadline()) {
			return nil, fmt.Errorf("assignment never settled to a balanced split: %v", now)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type memberPhase struct {
	Partitions []int32     `json:"partitions"`
	Records    []OutRecord `json:"records"`
	Revoked    []int32     `json:"revoked"`
}

type mark struct{ records, done, revoked int }

// phase lets `join` more members in, waits for a settled split, produces
// the records and waits until the members have read and committed them.
func (g *group) phase(ctx context.Context, newMember NewMember, produce Produce, records []InRecord, join int) ([]memberPhase, error) {
	var marks []mark
	for _, m := range g.members {
		s := m.State().snap()
		marks = append(marks, mark{len(s.records), s.done, len(s.revoked)})
	}
	for range join {
		m, err := newMember(g.req)
		if err != nil {
			return nil, fmt.Errorf("starting a member: %w", err)
		}
		g.members = append(g.members, m)
		marks = append(marks, mark{})
	}
	owned, err := g.settle()
	if err != nil {
		return nil, err
	}
	if err := produce(ctx, g.req, records); err != nil {
		return nil, fmt.Errorf("producing: %w", err)
	}
	for time.Now().Before(g.req.Deadline()) && g.trouble() == nil {
		done := 0
		for i, m := range g.members {
			done += m.State().snap().done - marks[i].done
		}
		if done >= len(records) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := g.owned(); !sameSplit(now, owned) {
		return nil, fmt.Errorf("assignment changed from %v to %v while reading", owned, now)
	}
	out := make([]memberPhase, len(g.members))
	for i, m := range g.members {
		s := m.State().snap()
		out[i] = memberPhase{Partitions: owned[i], Records: s.records[marks[i].records:],
			Revoked: s.revoked[marks[i].revoked:]}
	}
	return out, nil
}

// stop makes every member leave at once (each leaving member makes the
// others rebalance) and waits for them.
func (g *group) stop() {
	for _, m := range g.members {
		m.Stop()
	}
	for _, m := range g.members {
		m.Wait(max(5*time.Second, time.Until(g.req.Deadline())))
	}
}

// GroupAssign is the group_assign operation: req.Members members join;
// once their split has settled, req.Records are produced and read. With
// req.MoreRecords one more member joins and the same follows. Each phase
// reports per member what it owned once settled, and what it read and
// revoked since the phase began.
func GroupAssign(ctx context.Context, req *Request, newMember NewMember, produce Produce) (any, error) {
	g := &group{req: req}
	var phases []map[string]any
	err := func() error {
		defer g.stop()
		members, err := g.phase(ctx, newMember, produce, req.Records, req.Members)
		if err != nil {
			return err
		}
		phases = append(phases, map[string]any{"members": members})
		if len(req.MoreRecords) > 0 {
			members, err := g.phase(ctx, newMember, produce, req.MoreRecords, 1)
			if err != nil {
				return err
			}
			phases = append(phases, map[string]any{"members": members})
		}
		return nil
	}()
	if err == nil {
		err = g.trouble()
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"phases": phases}, nil
}

// GroupSplit is the group_split operation: two members with the client's
// default strategy split the topic; records are produced once they hold a
// settled, disjoint part of it; every record must arrive exactly once and is
// committed.
func GroupSplit(ctx context.Context, req *Request, newMember NewMember, produce Produce) (any, error) {
	r := *req
	r.Members, r.MoreRecords, r.Strategy = 2, nil, ""
	res, err := GroupAssign(ctx, &r, newMember, produce)
	if err != nil {
		return nil, err
	}
	members := res.(map[string]any)["phases"].([]map[string]any)[0]["members"].([]memberPhase)
	out := make([]map[string]any, len(members))
	for i, m := range members {
		out[i] = map[string]any{"partitions": m.Partitions, "records": m.Records}
	}
	return map[string]any{"members": out}, nil
}

// GroupRead is group_resume (linger > 0: keep reading that long after
// req.Count records, so redelivered old records would show up) and
// group_commit (linger 0): one member with the default strategy reads
// req.Count records and commits them.
func GroupRead(ctx context.Context, req *Request, newMember NewMember, linger time.Duration) (any, error) {
	r := *req
	r.Strategy = ""
	m, err := newMember(&r)
	if err != nil {
		return nil, err
	}
	defer func() {
		m.Stop()
		m.Wait(max(5*time.Second, time.Until(req.Deadline())))
	}()
	var quietUntil time.Time
	for {
		s := m.State().snap()
		if s.err != nil {
			return nil, s.err
		}
		if s.done >= req.Count {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(linger)
			}
			if !time.Now().Before(quietUntil) && s.done == len(s.records) {
				return map[string]any{"records": s.records}, nil
			}
		}
		if time.Now().After(req.Deadline()) {
			if s.done == len(s.records) && req.Op == "group_resume" {
				return map[string]any{"records": s.records}, nil // the harness says what is missing
			}
			return nil, fmt.Errorf("read %d records (%d committed) of %d before the deadline", len(s.records), s.done, req.Count)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// GroupHandlers are the group operations every driver serves the same way, given how the
// client starts a member and produces records.
func GroupHandlers(newMember NewMember, produce Produce) map[string]Handler {
	return map[string]Handler{
		"group_split": func(ctx context.Context, req *Request) (any, error) {
			return GroupSplit(ctx, req, newMember, produce)
		},
		"group_resume": func(ctx context.Context, req *Request) (any, error) {
			linger := 2.0
			if req.Linger != nil {
				linger = *req.Linger
			}
			return GroupRead(ctx, req, newMember, time.Duration(linger*float64(time.Second)))
		},
		"group_commit": func(ctx context.Context, req *Request) (any, error) {
			return GroupRead(ctx, req, newMember, 0)
		},
		"group_assign": func(ctx context.Context, req *Request) (any, error) {
			return GroupAssign(ctx, req, newMember, produce)
		},
	}
}
