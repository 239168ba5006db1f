package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The latency scenario's other load shapes (the main run is novaLatencyShape), and the
// "instances" scenario: 1, 2 and 4 nodes with the sends on n1 and the subscribers on n2 only,
// on one redis-server and on a Redis Cluster, to see how the cost of a message scales with
// the instances and what a node without subscribers of the busy conversations spends on them.

// latencyShapes are the load shapes of this run, the main one included.
func (b *Bench) latencyShapes() []loadShape {
	if len(b.cfg.Shapes) > 0 {
		return b.cfg.Shapes
	}
	return withMainShape(defaultShapes(b.cfg.Quick))
}

// runNovaShapes runs every shape of -shapes but the main one on the current nodes, at the
// latency run's rate and size, each followed by the same shape on Centrifugo (cf; nil: not
// measured), so that the two systems meet the machine as it is at that moment. After a shape
// with idle connections the nodes are restarted, so that later scenarios (memory above all)
// start from processes that have not held 10,000 connections. It returns false when the nodes
// could not be restarted.
func (b *Bench) runNovaShapes(ctx context.Context, cf *cfShapes) bool {
	for _, sh := range b.latencyShapes() {
		if sh == novaLatencyShape {
			continue // that is b.res.Latency
		}
		if ctx.Err() != nil {
			return true
		}
		b.vacuum(ctx)
		name := fmt.Sprintf("latency-%s@%d", sh, b.cfg.Rate)
		b.log.Printf("%s: %s", name, sh.Describe())
		l := b.runLatencyPlan(ctx, name, "interest", latencyPlan{shape: sh}, b.cfg.Rate, b.cfg.LatencyWarmup, b.measureFor(sh), true)
		b.res.LatencyShapes = append(b.res.LatencyShapes, l)
		if sh.IdleConns > 0 && ctx.Err() == nil {
			b.log.Printf("%s: restarting the %d nodes so that later scenarios start from fresh processes", name, b.cfg.Instances)
			b.env.StopNodes()
			if err := b.startNodes(ctx, "interest"); err != nil {
				b.res.Errors = append(b.res.Errors, "restart nodes after "+name+": "+err.Error())
				return false
			}
		}
		cf.run(ctx, sh)
	}
	return true
}

// instancesPlan lays out the instances scenario on nodes: sends to n1, subscribers on n2 (on
// n1 when it runs alone), nobody on the others.
func instancesPlan(nodes []*Node) latencyPlan {
	return latencyPlan{shape: novaLatencyShape, sender: nodes[0], subs: []*Node{nodes[min(1, len(nodes)-1)]}}
}

// instancesNoLoad is how long the instances scenario measures the nodes' CPU before sending.
const instancesNoLoad = 3 * time.Second

// runInstances runs the main shape at the latency run's rate with each count of
// -instance-counts on each topology of -topologies, on restarted nodes, measuring every node's
// CPU apart. A cluster is started before its first count and stopped after its last (with the
// nodes that used it); after a single-server topology its last nodes are left running.
func (b *Bench) runInstances(ctx context.Context) []*LatencyResult {
	var out []*LatencyResult
	steps := instancesSteps(b.cfg.Topologies, b.cfg.InstanceCounts)
	for i := 0; i < len(steps) && ctx.Err() == nil; {
		top := steps[i].Topology
		j := i
		for j < len(steps) && steps[j].Topology == top {
			j++
		}
		out = append(out, b.runTopology(ctx, top, steps[i:j])...)
		i = j
	}
	return out
}

// runTopology runs the steps of one topology, starting (and afterwards stopping) its cluster.
func (b *Bench) runTopology(ctx context.Context, top redisTopology, steps []instancesStep) []*LatencyResult {
	failed := func(s instancesStep, err string) *LatencyResult {
		return &LatencyResult{Name: s.Name(b.cfg.Rate), Nodes: s.Nodes, Shape: novaLatencyShape.String(), ShapeSpec: novaLatencyShape,
			OfferedRate: b.cfg.Rate, Topology: top.Name, RedisServers: top.Servers(), FanoutPartitions: top.Partitions, Error: err}
	}
	b.env.StopNodes() // the nodes before use the single server; none may run beside the topology's
	if top.Masters > 0 {
		t := time.Now()
		if err := b.env.StartRedisCluster(ctx, top.Masters); err != nil {
			b.log.Printf("instances on %s: ERROR start the Redis Cluster: %v", top.Name, err)
			var out []*LatencyResult
			for _, s := range steps {
				out = append(out, failed(s, "start Redis Cluster: "+err.Error()))
			}
			return out
		}
		b.log.Printf("Redis Cluster ready in %s: %d masters with a replica each, seeds %s", time.Since(t).Round(time.Millisecond), top.Masters, b.env.Cluster.Seeds())
		defer func() {
			b.env.StopNodes()
			b.env.StopRedisCluster()
			b.log.Printf("Redis Cluster stopped")
		}()
	}
	var out []*LatencyResult
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		name := s.Name(b.cfg.Rate)
		subs := "n2"
		if s.Nodes == 1 {
			subs = "n1"
		}
		b.log.Printf("%s: restarting with %d nodes on %s: HTTP sends to n1, every subscriber on %s, nothing else on the others", name, s.Nodes, top.Describe(), subs)
		b.env.StopNodes()
		if err := b.startNodesN(ctx, "interest", s.Nodes, top.Settings()); err != nil {
			out = append(out, failed(s, "start nodes: "+err.Error()))
			b.log.Printf("%s: ERROR start nodes: %v", name, err)
			break
		}
		b.vacuum(ctx)
		from := time.Now()
		_, noLoad := b.cpuDuringByNode(ctx, from, from.Add(instancesNoLoad))()
		b.log.Printf("%s: each node's CPU without load for %s: %s", name, instancesNoLoad, formatNodeCPU(noLoad))
		l := b.runLatencyPlan(ctx, name, "interest", instancesPlan(b.env.Nodes), b.cfg.Rate, b.cfg.LatencyWarmup, b.cfg.InstancesMeasure, true)
		l.Topology, l.RedisServers, l.FanoutPartitions = top.Name, top.Servers(), top.Partitions
		l.NodeCPUNoLoad = noLoad
		if l.Error == "" {
			var idle []string
			for _, n := range idleNodes(l) {
				idle = append(idle, fmt.Sprintf("%s %.2f%% (%.2f%% without load)", n, 100*l.NodeCPU[n], 100*noLoad[n]))
			}
			if len(idle) > 0 {
				b.log.Printf("%s: nodes without subscribers (target <= 2%% of a core each): %s; relay leader %s", name, strings.Join(idle, ", "), orDash(l.RelayLeader))
			}
		}
		out = append(out, l)
	}
	return out
}

// idleNodes are the nodes of a run that neither took the sends nor held a subscriber, by name.
func idleNodes(l *LatencyResult) []string {
	var out []string
	for i := 1; i <= l.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		if name != l.SenderNode && !containsString(l.SubscriberNodes, name) {
			out = append(out, name)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
