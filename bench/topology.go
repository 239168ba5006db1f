package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The Redis topologies the "instances" scenario runs its node counts on (-topologies): the one
// private redis-server every other scenario uses, and a private Redis Cluster of 3 masters with a
// replica each, started for those runs only.

// redisTopology is a Redis the nodes of the instances scenario run on.
type redisTopology struct {
	Name string `json:"name"` // "single", "single-all" or "cluster"
	// Masters is the cluster's masters, each with one replica; 0 for the single redis-server.
	Masters int `json:"masters,omitempty"`
	// Partitions is the nodes' NOVA_FANOUT_PARTITIONS. A cluster needs more than 1 (the
	// unpartitioned fan-out keys share no hash slot); the single server keeps Nova's default 1,
	// what a deployment on one Redis runs.
	Partitions int `json:"fanout_partitions"`
	// AllRead runs the nodes with NOVA_GROUP_READERS=all: every node takes a share of the one
	// partition's consumer-group work (by default the relay leader reads it, the others only
	// when it stalls or falls behind).
	AllRead bool `json:"group_readers_all,omitempty"`
}

var (
	singleTopology    = redisTopology{Name: "single", Partitions: 1}
	singleAllTopology = redisTopology{Name: "single-all", Partitions: 1, AllRead: true}
	clusterTopology   = redisTopology{Name: "cluster", Masters: 3, Partitions: 8}
	topologyNames     = []string{singleTopology.Name, singleAllTopology.Name, clusterTopology.Name}
)

// defaultTopologies are the topologies of a run without -topologies: all three, in full and in
// quick mode alike (the cluster's start and its three quick runs add about 40 s to a quick run,
// and they are the only smoke test of the bench on a cluster; single-all shows what an
// instance without subscribers spends when every instance takes a share of the groups' work).
func defaultTopologies() []redisTopology {
	return []redisTopology{singleTopology, singleAllTopology, clusterTopology}
}

// parseTopologies reads a comma-separated list of topology names ("single,cluster"), in the
// order given, without repeats.
func parseTopologies(list string) ([]redisTopology, error) {
	var out []redisTopology
	for _, s := range strings.Split(list, ",") {
		var t redisTopology
		switch strings.TrimSpace(s) {
		case "":
			continue
		case singleTopology.Name:
			t = singleTopology
		case singleAllTopology.Name:
			t = singleAllTopology
		case clusterTopology.Name:
			t = clusterTopology
		default:
			return nil, fmt.Errorf("unknown topology %q (have %s)", strings.TrimSpace(s), strings.Join(topologyNames, ","))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Servers is how many redis-server processes the topology runs.
func (t redisTopology) Servers() int {
	if t.Masters == 0 {
		return 1
	}
	return 2 * t.Masters
}

// Settings are the NOVA_* settings the nodes get on this topology beside the bench's own; the
// REDIS_URL comes from the Env (the single server's URL, or the cluster's seeds).
func (t redisTopology) Settings() map[string]string {
	switch {
	case t.Partitions > 1:
		return map[string]string{"NOVA_FANOUT_PARTITIONS": strconv.Itoa(t.Partitions)}
	case t.AllRead:
		return map[string]string{"NOVA_GROUP_READERS": "all"}
	}
	return nil
}

// Describe says the topology in words, for the report.
func (t redisTopology) Describe() string {
	if t.Masters == 0 && t.AllRead {
		return fmt.Sprintf("one redis-server, NOVA_FANOUT_PARTITIONS=%d, NOVA_GROUP_READERS=all (every instance takes a share of the consumer groups' work)", t.Partitions)
	}
	if t.Masters == 0 {
		return fmt.Sprintf("one redis-server, NOVA_FANOUT_PARTITIONS=%d (the defaults: the relay leader reads for the consumer groups, the others when it stalls or falls behind)", t.Partitions)
	}
	return fmt.Sprintf("Redis Cluster of %d masters with a replica each (%d redis-servers), NOVA_FANOUT_PARTITIONS=%d",
		t.Masters, t.Servers(), t.Partitions)
}

// instancesStep is one run of the instances scenario: a node count on a topology.
type instancesStep struct {
	Topology redisTopology
	Nodes    int
}

// instancesSteps lays the scenario out topology by topology (a cluster is started once for all
// its counts), each count in the order given.
func instancesSteps(tops []redisTopology, counts []int) []instancesStep {
	var out []instancesStep
	for _, t := range tops {
		for _, n := range counts {
			out = append(out, instancesStep{Topology: t, Nodes: n})
		}
	}
	return out
}

// Name is the run's name in the report and results.json: "instances-4-cluster@1000".
func (s instancesStep) Name(rate int) string {
	return fmt.Sprintf("instances-%d-%s@%d", s.Nodes, s.Topology.Name, rate)
}
