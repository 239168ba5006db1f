package testinfra

import (
	"context"
	"testing"
	"time"
)

func TestAPrivateClusterServesEverySlotAndSurvivesLosingAMaster(t *testing.T) {
	ctx := context.Background()
	c := StartRedisCluster(t, 3)
	cl := c.Client()

	// keys in different slots are written through the cluster client
	for _, k := range []string{"stream:conversation:{a}", "stream:conversation:{b}", "stream:fanout:all-conversations:{0}"} {
		if err := cl.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}

	// when the master of one key stops once its replica has the key, the replica takes over and
	// the key is still there
	key := "stream:conversation:{a}"
	c.WaitReplicated(10 * time.Second)
	old := c.StopMasterOf(key, 30*time.Second)
	if now := c.MasterFor(key); now == old {
		t.Fatal("the stopped master still serves the slot")
	}
	start := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := cl.Get(ctx, key).Result()
		if err == nil && v == "v" {
			t.Logf("readable again after %s", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after failover GET %s = %q, %v; want v", key, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
