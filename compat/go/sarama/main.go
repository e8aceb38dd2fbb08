// sarama driver for the compatibility matrix: one operation per process,
// see compat/drivers/common.py and compat/go/driver.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"

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

// config speaks the protocol of Kafka 4.0, the version Klamm follows; sarama
// also narrows each request to the versions the broker advertises.
func config() *sarama.Config {
	if driver.Debug {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	c := sarama.NewConfig()
	c.ClientID = "klamm-compat-sarama"
	c.Version = sarama.V4_0_0_0
	c.Metadata.AllowAutoTopicCreation = false
	c.Net.DialTimeout = 10 * time.Second
	return c
}

func client(req *driver.Request, c *sarama.Config) (sarama.Client, error) {
	return sarama.NewClient([]string{req.Bootstrap}, c)
}

func admin(req *driver.Request) (sarama.ClusterAdmin, sarama.Client, error) {
	cl, err := client(req, config())
	if err != nil {
		return nil, nil, err
	}
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return adm, cl, nil
}

func probe(ctx context.Context, req *driver.Request) (any, error) {
	return map[string]any{"version": driver.ModuleVersion("github.com/IBM/sarama")}, nil
}

func listTopics(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	brokers := []map[string]any{}
	bs, _, err := adm.DescribeCluster()
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		host, port, err := net.SplitHostPort(b.Addr())
		if err != nil {
			return nil, err
		}
		p, _ := strconv.Atoi(port)
		brokers = append(brokers, map[string]any{"id": b.ID(), "host": host, "port": p})
	}
	details, err := adm.ListTopics()
	if err != nil {
		return nil, err
	}
	topics := map[string]any{}
	for name, d := range details {
		topics[name] = map[string]any{"partitions": d.NumPartitions, "error": nil}
	}
	return map[string]any{"brokers": brokers, "topics": topics}, nil
}

// topicMetadata asks for the topic with auto-creation allowed, as a
// producer would, until the answer has partitions.
func topicMetadata(ctx context.Context, req *driver.Request) (any, error) {
	c := config()
	c.Metadata.AllowAutoTopicCreation = true
	cl, err := client(req, c)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var last error
	for ctx.Err() == nil {
		if last = cl.RefreshMetadata(req.Topic); last == nil {
			var ps []int32
			if ps, last = cl.Partitions(req.Topic); last == nil {
				if len(ps) > 0 {
					return map[string]any{"partitions": len(ps)}, nil
				}
				last = errors.New("no partitions")
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("no usable metadata for %s: %v", req.Topic, last)
}

func createTopic(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	return nil, adm.CreateTopic(req.Topic, &sarama.TopicDetail{NumPartitions: int32(req.Partitions),
		ReplicationFactor: 1}, false)
}

func deleteTopic(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	return nil, adm.DeleteTopic(req.Topic)
}

func createPartitions(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	return nil, adm.CreatePartitions(req.Topic, int32(req.Count), nil, false)
}

var codecs = map[string]sarama.CompressionCodec{
	"":       sarama.CompressionNone,
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// chosen marks a message whose partition the request fixed.
type chosen struct{}

// partitioner keeps a chosen partition and hashes the key (sarama's
// default) for the others.
type partitioner struct{ hash sarama.Partitioner }

func (p partitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if _, ok := m.Metadata.(chosen); ok {
		return m.Partition, nil
	}
	return p.hash.Partition(m, n)
}

func (p partitioner) RequiresConsistency() bool { return true }

// produceRecords sends the records with acks=all through a SyncProducer and
// returns the messages, which then carry partition and offset.
func produceRecords(ctx context.Context, req *driver.Request, records []driver.InRecord) ([]*sarama.ProducerMessage, error) {
	codec, ok := codecs[req.Codec]
	if !ok {
		return nil, fmt.Errorf("unknown codec %q", req.Codec)
	}
	c := config()
	c.Metadata.AllowAutoTopicCreation = true
	c.Producer.Compression = codec
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Flush.Frequency = 20 * time.Millisecond
	c.Producer.Partitioner = func(topic string) sarama.Partitioner {
		return partitioner{sarama.NewHashPartitioner(topic)}
	}
	if req.Idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
		c.Producer.Retry.Max = 5
	}
	cl, err := client(req, c)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p, err := sarama.NewSyncProducerFromClient(cl)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(records))
	for i, r := range records {
		m := &sarama.ProducerMessage{Topic: req.Topic}
		if r.Key != nil {
			m.Key = sarama.ByteEncoder(driver.Bytes(r.Key))
		}
		if r.Value != nil {
			m.Value = sarama.ByteEncoder(driver.Bytes(r.Value))
		}
		for _, h := range driver.HeadersIn(r.Headers) {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		if r.Partition != nil {
			m.Partition, m.Metadata = *r.Partition, chosen{}
		}
		if r.Timestamp != nil {
			m.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		msgs[i] = m
	}
	if err := p.SendMessages(msgs); err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			return nil, fmt.Errorf("%d of %d records failed, first: %w", len(perrs), len(msgs), perrs[0].Err)
		}
		return nil, err
	}
	return msgs, nil
}

func produce(ctx context.Context, req *driver.Request, records []driver.InRecord) error {
	_, err := produceRecords(ctx, req, records)
	return err
}

func produceOp(ctx context.Context, req *driver.Request) (any, error) {
	msgs, err := produceRecords(ctx, req, req.Records)
	if err != nil {
		return nil, err
	}
	offsets := make([][2]int64, len(msgs))
	for i, m := range msgs {
		offsets[i] = [2]int64{int64(m.Partition), m.Offset}
	}
	return map[string]any{"offsets": offsets, "timestamps_set": true}, nil
}

func recordOut(m *sarama.ConsumerMessage) driver.OutRecord {
	hs := make([]driver.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = driver.Header{Key: string(h.Key), Value: h.Value}
	}
	return driver.Record(m.Partition, m.Offset, m.Key, m.Value, hs, m.Timestamp)
}

func consume(ctx context.Context, req *driver.Request) (any, error) {
	c := config()
	c.Consumer.Return.Errors = true
	// Closing waits for the fetch in flight: keep its long poll short.
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	cl, err := client(req, c)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	consumer, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(req.Topic, req.Partition, req.Offset)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	out := []driver.OutRecord{}
	for len(out) < req.Count {
		select {
		case m := <-pc.Messages():
			out = append(out, recordOut(m))
		case err := <-pc.Errors():
			return nil, err
		case <-ctx.Done():
			return map[string]any{"records": out}, nil // the harness reports what is missing
		}
	}
	return map[string]any{"records": out}, nil
}

func watermarks(cl sarama.Client, topic string, p int32) (int64, int64, error) {
	lo, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return 0, 0, err
	}
	hi, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
	return lo, hi, err
}

func listOffsets(ctx context.Context, req *driver.Request) (any, error) {
	cl, err := client(req, config())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, hi, err := watermarks(cl, req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	return map[string]any{"earliest": lo, "latest": hi}, nil
}

func describeConfigs(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: req.Topic})
	if err != nil {
		return nil, err
	}
	dynamic := map[string]string{}
	for _, e := range entries {
		if e.Source == sarama.SourceTopic {
			dynamic[e.Name] = e.Value
		}
	}
	return map[string]any{"dynamic": dynamic}, nil
}

func alterConfigs(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	entries := map[string]sarama.IncrementalAlterConfigsEntry{}
	for k, v := range req.Set {
		entries[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet,
			Value: &v}
	}
	for _, k := range req.Delete {
		entries[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationDelete}
	}
	return nil, adm.IncrementalAlterConfig(sarama.TopicResource, req.Topic, entries, false)
}

// committed returns the group's committed offsets on req.Topic.
func committed(adm sarama.ClusterAdmin, cl sarama.Client, req *driver.Request) (map[int32]int64, error) {
	ps, err := cl.Partitions(req.Topic)
	if err != nil {
		return nil, err
	}
	resp, err := adm.ListConsumerGroupOffsets(req.Group, map[string][]int32{req.Topic: ps})
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range ps {
		b := resp.GetBlock(req.Topic, p)
		if b == nil {
			continue
		}
		if !errors.Is(b.Err, sarama.ErrNoError) {
			return nil, fmt.Errorf("%s[%d]: %w", req.Topic, p, b.Err)
		}
		if b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out, nil
}

func groupOffsets(ctx context.Context, req *driver.Request) (any, error) {
	adm, cl, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	offs, err := committed(adm, cl, req)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for p, o := range offs {
		_, hi, err := watermarks(cl, req.Topic, p)
		if err != nil {
			return nil, err
		}
		out[strconv.Itoa(int(p))] = map[string]int64{"committed": o, "end": hi}
	}
	return map[string]any{"partitions": out}, nil
}

// groupReset sets the group's offsets the way kafka-consumer-groups.sh
// --reset-offsets does, computing the targets on the client side.
func groupReset(ctx context.Context, req *driver.Request) (any, error) {
	adm, cl, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	offs, err := committed(adm, cl, req)
	if err != nil {
		return nil, err
	}
	set := map[int32]sarama.OffsetAndMetadata{}
	out := map[string]int64{}
	for p, o := range offs {
		lo, hi, err := watermarks(cl, req.Topic, p)
		if err != nil {
			return nil, err
		}
		byTime := int64(-1)
		if req.To == "datetime" {
			if byTime, err = cl.GetOffset(req.Topic, p, req.Timestamp); err != nil {
				return nil, err
			}
		}
		target, err := driver.ResetTarget(req, o, lo, hi, byTime)
		if err != nil {
			return nil, err
		}
		set[p] = sarama.OffsetAndMetadata{Offset: target, LeaderEpoch: -1}
		out[strconv.Itoa(int(p))] = target
	}
	resp, err := adm.AlterConsumerGroupOffsets(req.Group, map[string]map[int32]sarama.OffsetAndMetadata{req.Topic: set}, nil)
	if err != nil {
		return nil, err
	}
	for p, kerr := range resp.Errors[req.Topic] {
		if !errors.Is(kerr, sarama.ErrNoError) {
			return nil, fmt.Errorf("committing %s[%d]: %w", req.Topic, p, kerr)
		}
	}
	return map[string]any{"offsets": out}, nil
}

func listGroups(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	groups, err := adm.ListConsumerGroups()
	if err != nil {
		return nil, err
	}
	names := []string{}
	for g := range groups {
		names = append(names, g)
	}
	return map[string]any{"groups": names}, nil
}

func deleteGroup(ctx context.Context, req *driver.Request) (any, error) {
	adm, _, err := admin(req)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	return nil, adm.DeleteConsumerGroup(req.Group)
}

// sarama's balance strategies; the default is range. Each call makes a new
// one: the cooperative strategy keeps state per group.
var strategies = map[string]func() sarama.BalanceStrategy{
	"range":              sarama.NewBalanceStrategyRange,
	"roundrobin":         sarama.NewBalanceStrategyRoundRobin,
	"sticky":             sarama.NewBalanceStrategySticky,
	"cooperative-sticky": sarama.NewBalanceStrategyCooperativeSticky,
}

func groupStrategies(ctx context.Context, req *driver.Request) (any, error) {
	return map[string]any{"strategies": []string{"range", "roundrobin", "sticky", "cooperative-sticky"}}, nil
}

// member is one group member; sarama runs a ConsumeClaim goroutine per
// owned partition, so a partition is owned while its claim runs and revoked
// when the claim ends (all of them under an eager strategy, only the ones
// that move under the cooperative one). Each message is committed before it
// counts as done.
type member struct {
	state  driver.MemberState
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	closed chan struct{}
	commit sync.Mutex // one synchronous commit at a time across claims
}

func (m *member) State() *driver.MemberState { return &m.state }
func (m *member) Stop()                      { m.cancel() }
func (m *member) Wait(d time.Duration) {
	select {
	case <-m.closed:
	case <-time.After(d):
	}
}

func (m *member) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	p := []int32{claim.Partition()}
	m.state.Assigned(p)
	defer m.state.Revoked(p)
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.state.Read(recordOut(msg))
			sess.MarkMessage(msg, "")
			m.commit.Lock()
			sess.Commit()
			m.state.Committed()
			m.commit.Unlock()
		case <-sess.Context().Done():
			return nil
		}
	}
}

func newMember(req *driver.Request) (driver.Member, error) {
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	if req.Strategy != "" {
		s, ok := strategies[req.Strategy]
		if !ok {
			return nil, driver.Skip("sarama has no " + req.Strategy + " strategy")
		}
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{s()}
		c.Consumer.Group.Heartbeat.Interval = driver.HeartbeatInterval
	}
	cg, err := sarama.NewConsumerGroup([]string{req.Bootstrap}, req.Group, c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cg: cg, cancel: cancel, closed: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			m.state.Fail(err)
		}
	}()
	go func() {
		defer close(m.closed)
		defer cg.Close()
		topics := []string{req.Topic}
		for ctx.Err() == nil {
			// Under an eager strategy each rebalance ends Consume; join again.
			if err := cg.Consume(ctx, topics, m); err != nil {
				if ctx.Err() == nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
					m.state.Fail(fmt.Errorf("consume: %w", err))
				}
				return
			}
		}
	}()
	return m, nil
}
