// franz-go driver for the compatibility matrix: one operation per process,
// see compat/drivers/common.py and compat/go/driver.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"klamm-compat/driver"
)

func main() {
	ops := map[string]driver.Handler{
		"probe":             probe,
		"list_topics":       listTopics,
		"topic_metadata":    topicMetadata,
		"create_topic":      createTopic,
		"delete_topic":      deleteTopic,
		"create_partitions": createPartitions,
		"produce":           produceOp,
		"consume":           consume,
		"list_offsets":      listOffsets,
		"describe_configs":  describeConfigs,
		"alter_configs":     alterConfigs,
		"group_offsets":     groupOffsets,
		"group_reset":       groupReset,
		"list_groups":       listGroups,
		"delete_group":      deleteGroup,
		"group_strategies":  groupStrategies,
	}
	for name, h := range driver.GroupHandlers(newMember, produce) {
		ops[name] = h
	}
	driver.Run(ops)
}

func client(req *driver.Request, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(req.Bootstrap), kgo.ClientID("klamm-compat-franz-go")}
	if driver.Debug {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}
	return kgo.NewClient(append(base, opts...)...)
}

func admin(req *driver.Request) (*kadm.Client, error) {
	cl, err := client(req)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

func probe(ctx context.Context, req *driver.Request) (any, error) {
	return map[string]any{"version": driver.ModuleVersion("github.com/twmb/franz-go"),
		"kadm": driver.ModuleVersion("github.com/twmb/franz-go/pkg/kadm")}, nil
}

func listTopics(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	brokers := []map[string]any{}
	for _, b := range md.Brokers {
		brokers = append(brokers, map[string]any{"id": b.NodeID, "host": b.Host, "port": b.Port})
	}
	topics := map[string]any{}
	for name, t := range md.Topics {
		var e any
		if t.Err != nil {
			e = t.Err.Error()
		}
		topics[name] = map[string]any{"partitions": len(t.Partitions), "error": e}
	}
	return map[string]any{"brokers": brokers, "topics": topics}, nil
}

// topicMetadata asks for the topic with auto-creation allowed, as a
// producer would, until the answer has usable partitions.
func topicMetadata(ctx context.Context, req *driver.Request) (any, error) {
	cl, err := client(req)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var last error
	for ctx.Err() == nil {
		mreq := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(req.Topic)
		mreq.Topics = append(mreq.Topics, t)
		mreq.AllowAutoTopicCreation = true
		resp, err := mreq.RequestWith(ctx, cl)
		switch {
		case err != nil:
			last = err
		case len(resp.Topics) != 1:
			last = fmt.Errorf("metadata answered %d topics", len(resp.Topics))
		default:
			rt := resp.Topics[0]
			if last = kerr.ErrorForCode(rt.ErrorCode); last == nil {
				if len(rt.Partitions) > 0 {
					return map[string]any{"partitions": len(rt.Partitions)}, nil
				}
				last = errors.New("no partitions")
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("no usable metadata for %s: %v", req.Topic, last)
}

func createTopic(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	_, err = adm.CreateTopic(ctx, int32(req.Partitions), 1, nil, req.Topic)
	return nil, err
}

func deleteTopic(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	resp, err := adm.DeleteTopic(ctx, req.Topic)
	if err == nil {
		err = resp.Err
	}
	return nil, err
}

func createPartitions(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	resp, err := adm.UpdatePartitions(ctx, req.Count, req.Topic)
	if err == nil {
		err = resp.Error()
	}
	return nil, err
}

var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// chosenPartitioner sends a record with a partition (>= 0) there and lets
// Kafka's key hashing place the others (Partition -1).
type chosenPartitioner struct{ kgo.Partitioner }

func (p chosenPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return chosenTopic{p.Partitioner.ForTopic(t)}
}

type chosenTopic struct{ kgo.TopicPartitioner }

func (c chosenTopic) OnNewBatch() {
	if nb, ok := c.TopicPartitioner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

func (c chosenTopic) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || c.TopicPartitioner.RequiresConsistency(r)
}

func (c chosenTopic) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return c.TopicPartitioner.Partition(r, n)
}

type placed struct {
	partition int32
	offset    int64
}

// produceRecords sends the records in order with acks=all and returns where
// each landed. Unless idempotent, the client's default idempotent producer
// is switched off.
func produceRecords(ctx context.Context, req *driver.Request, records []driver.InRecord) ([]placed, error) {
	codec, ok := codecs[req.Codec]
	if !ok && req.Codec != "" {
		return nil, fmt.Errorf("unknown codec %q", req.Codec)
	}
	if req.Codec == "" {
		codec = kgo.NoCompression()
	}
	opts := []kgo.Opt{kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(chosenPartitioner{kgo.StickyKeyPartitioner(nil)}),
		kgo.ProducerLinger(20 * time.Millisecond), kgo.AllowAutoTopicCreation()}
	if !req.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := client(req, opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := make([]placed, len(records))
	errs := make([]error, len(records))
	var wg sync.WaitGroup
	for i, r := range records {
		rec := &kgo.Record{Topic: req.Topic, Key: driver.Bytes(r.Key), Value: driver.Bytes(r.Value), Partition: -1}
		for _, h := range driver.HeadersIn(r.Headers) {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Partition != nil {
			rec.Partition = *r.Partition
		}
		if r.Timestamp != nil {
			rec.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		wg.Add(1)
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			out[i], errs[i] = placed{r.Partition, r.Offset}, err
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	return out, nil
}

func produce(ctx context.Context, req *driver.Request, records []driver.InRecord) error {
	_, err := produceRecords(ctx, req, records)
	return err
}

func produceOp(ctx context.Context, req *driver.Request) (any, error) {
	at, err := produceRecords(ctx, req, req.Records)
	if err != nil {
		return nil, err
	}
	offsets := make([][2]int64, len(at))
	for i, p := range at {
		offsets[i] = [2]int64{int64(p.partition), p.offset}
	}
	return map[string]any{"offsets": offsets, "timestamps_set": true}, nil
}

func recordOut(r *kgo.Record) driver.OutRecord {
	hs := make([]driver.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = driver.Header{Key: h.Key, Value: h.Value}
	}
	return driver.Record(r.Partition, r.Offset, r.Key, r.Value, hs, r.Timestamp)
}

func consume(ctx context.Context, req *driver.Request) (any, error) {
	cl, err := client(req, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		req.Topic: {req.Partition: kgo.NewOffset().At(req.Offset)}}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := []driver.OutRecord{}
	for len(out) < req.Count {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break // the harness reports what is missing
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return nil, fmt.Errorf("fetching %s[%d]: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		for _, r := range fs.Records() {
			out = append(out, recordOut(r))
		}
	}
	return map[string]any{"records": out[:min(len(out), req.Count)]}, nil
}

// watermarks returns the earliest and latest offset of each partition.
func watermarks(ctx context.Context, adm *kadm.Client, topic string) (map[int32][2]int64, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32][2]int64{}
	for p, s := range starts[topic] {
		e, ok := ends.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("no end offset for %s[%d]", topic, p)
		}
		out[p] = [2]int64{s.Offset, e.Offset}
	}
	return out, nil
}

func listOffsets(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	marks, err := watermarks(ctx, adm, req.Topic)
	if err != nil {
		return nil, err
	}
	m, ok := marks[req.Partition]
	if !ok {
		return nil, fmt.Errorf("no offsets for %s[%d]", req.Topic, req.Partition)
	}
	return map[string]any{"earliest": m[0], "latest": m[1]}, nil
}

func describeConfigs(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	rcs, err := adm.DescribeTopicConfigs(ctx, req.Topic)
	if err != nil {
		return nil, err
	}
	rc, err := rcs.On(req.Topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, err
	}
	dynamic := map[string]string{}
	for _, c := range rc.Configs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			dynamic[c.Key] = c.MaybeValue()
		}
	}
	return map[string]any{"dynamic": dynamic}, nil
}

func alterConfigs(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	var alter []kadm.AlterConfig
	for k, v := range req.Set {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
	}
	for _, k := range req.Delete {
		alter = append(alter, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	resps, err := adm.AlterTopicConfigs(ctx, alter, req.Topic)
	if err != nil {
		return nil, err
	}
	for _, r := range resps {
		if r.Err != nil {
			return nil, fmt.Errorf("%s: %w %s", r.Name, r.Err, r.ErrMessage)
		}
	}
	return nil, nil
}

// committed returns the group's committed offsets on req.Topic.
func committed(ctx context.Context, adm *kadm.Client, req *driver.Request) (map[int32]int64, error) {
	resps, err := adm.FetchOffsets(ctx, req.Group)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, r := range resps[req.Topic] {
		if r.At >= 0 {
			out[p] = r.At
		}
	}
	return out, nil
}

func groupOffsets(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	offs, err := committed(ctx, adm, req)
	if err != nil {
		return nil, err
	}
	marks, err := watermarks(ctx, adm, req.Topic)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for p, o := range offs {
		out[strconv.Itoa(int(p))] = map[string]int64{"committed": o, "end": marks[p][1]}
	}
	return map[string]any{"partitions": out}, nil
}

// groupReset sets the group's offsets the way kafka-consumer-groups.sh
// --reset-offsets does, computing the targets on the client side.
func groupReset(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	offs, err := committed(ctx, adm, req)
	if err != nil {
		return nil, err
	}
	marks, err := watermarks(ctx, adm, req.Topic)
	if err != nil {
		return nil, err
	}
	var byTime kadm.ListedOffsets
	if req.To == "datetime" {
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, req.Timestamp, req.Topic); err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return nil, err
		}
	}
	set := kadm.Offsets{}
	out := map[string]int64{}
	for p, o := range offs {
		found := int64(-1)
		if l, ok := byTime.Lookup(req.Topic, p); ok {
			found = l.Offset
			if found >= marks[p][1] {
				found = -1 // kadm reports the log end when no record is at or after the time
			}
		}
		target, err := driver.ResetTarget(req, o, marks[p][0], marks[p][1], found)
		if err != nil {
			return nil, err
		}
		set.Add(kadm.Offset{Topic: req.Topic, Partition: p, At: target, LeaderEpoch: -1})
		out[strconv.Itoa(int(p))] = target
	}
	resps, err := adm.CommitOffsets(ctx, req.Group, set)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"offsets": out}, nil
}

func listGroups(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	names := groups.Groups()
	if names == nil {
		names = []string{}
	}
	return map[string]any{"groups": names}, nil
}

func deleteGroup(ctx context.Context, req *driver.Request) (any, error) {
	adm, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	resp, err := adm.DeleteGroup(ctx, req.Group)
	if err == nil {
		err = resp.Err
	}
	return nil, err
}

// franz-go's balancers; the default is cooperative-sticky. Its eager
// "sticky" balancer is left out of group_strategies: an eager member forgets
// its assignment when it revokes it before rejoining (franz-go clears it on
// purpose), so its JoinGroup metadata never names the partitions it had and
// the assignment cannot stick.
var balancers = map[string]func() kgo.GroupBalancer{
	"range":              kgo.RangeBalancer,
	"roundrobin":         kgo.RoundRobinBalancer,
	"sticky":             kgo.StickyBalancer,
	"cooperative-sticky": kgo.CooperativeStickyBalancer,
}

func groupStrategies(ctx context.Context, req *driver.Request) (any, error) {
	return map[string]any{"strategies": []string{"range", "roundrobin", "cooperative-sticky"}}, nil
}

// member is one group member polling in its own goroutine. Rebalances are
// held back while it handles a poll (BlockRebalanceOnPoll), so it commits
// exactly what it owns; what it owns is tracked through the callbacks, which
// under the cooperative protocol carry only the partitions that change.
type member struct {
	state  driver.MemberState
	cl     *kgo.Client
	cancel context.CancelFunc
	closed chan struct{}
}

func (m *member) State() *driver.MemberState { return &m.state }
func (m *member) Stop()                      { m.cancel() }
func (m *member) Wait(d time.Duration) {
	select {
	case <-m.closed:
	case <-time.After(d):
	}
}

func newMember(req *driver.Request) (driver.Member, error) {
	m := &member{closed: make(chan struct{})}
	topic := req.Topic
	opts := []kgo.Opt{
		kgo.ConsumerGroup(req.Group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.state.Assigned(ps[topic])
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.state.Revoked(ps[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.state.Revoked(ps[topic])
		}),
	}
	if req.Strategy != "" {
		b, ok := balancers[req.Strategy]
		if !ok {
			return nil, driver.Skip("franz-go has no " + req.Strategy + " balancer")
		}
		opts = append(opts, kgo.Balancers(b()), kgo.HeartbeatInterval(driver.HeartbeatInterval))
	}
	cl, err := client(req, opts...)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.run(ctx)
	return m, nil
}

func (m *member) run(ctx context.Context) {
	defer close(m.closed)
	defer m.cl.CloseAllowingRebalance()
	for {
		fs := m.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			m.state.Fail(fetchErr)
			return
		}
		recs := fs.Records()
		for _, r := range recs {
			m.state.Read(recordOut(r))
		}
		if len(recs) > 0 {
			if err := m.cl.CommitRecords(ctx, recs...); err != nil {
				m.state.Fail(fmt.Errorf("commit: %w", err))
				return
			}
			m.state.Committed()
		}
		m.cl.AllowRebalance()
	}
}
