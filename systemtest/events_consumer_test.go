package systemtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nova-chat/nova/internal/testinfra"
)

// TestAnotherServicesConsumerKilledMidRunIndexesEveryMessageOnce runs the example consumer of
// package events (events/example/consumer) as another service would, kills it with SIGKILL in
// the middle of a stream of sends and starts it again under the same name: every message ends
// up indexed once, although some were delivered twice.
func TestAnotherServicesConsumerKilledMidRunIndexesEveryMessageOnce(t *testing.T) {
	// given Nova, which knows of the indexer's group, and the indexer running
	rds := testinfra.StartRedis(t)
	rdb := rds.Client()
	const group, total = "example-indexer", 300
	nova := testinfra.StartProcess(t, testinfra.Env{DatabaseURL: testinfra.NewDatabase(t), RedisURL: rds.URL(),
		Settings: map[string]string{"NOVA_FANOUT_GROUPS": group}})
	bin := filepath.Join(t.TempDir(), "consumer")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nova-chat/nova/events/example/consumer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "REDIS_URL="+rds.URL(), "GROUP="+group, "CONSUMER=indexer-1", "CLAIM_IDLE=2s")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	indexer := start()
	alice := testinfra.NewUser(t, nova.URL)
	conv := alice.CreateConversation()
	indexed := func() int64 { return rdb.SCard(context.Background(), "example:"+group+":indexed:"+string(conv)).Val() }

	// when messages are sent, and the indexer is killed once it has indexed some of them
	sent := map[string]bool{}
	for i := range total {
		m, status := alice.Send(conv, fmt.Sprintf("m-%d", i), i)
		if status != 201 {
			t.Fatalf("send %d: status %d", i, status)
		}
		sent[m.ID] = true
		if i == total/2 {
			testinfra.Eventually(t, 10*time.Second, "the indexer indexes", func() bool { return indexed() > 20 })
			_ = indexer.Process.Signal(syscall.SIGKILL)
			_ = indexer.Wait()
			t.Logf("killed the indexer at %d indexed of %d sent", indexed(), i+1)
			indexer = start()
		}
	}

	// then every message is indexed once, the same ones that were sent
	testinfra.Eventually(t, 30*time.Second, "every message indexed", func() bool { return indexed() == total })
	for _, id := range rdb.SMembers(context.Background(), "example:"+group+":indexed:"+string(conv)).Val() {
		if !sent[id] {
			t.Fatalf("indexed %s, which was never sent", id)
		}
	}
	deliveries, _ := rdb.Get(context.Background(), "example:"+group+":deliveries").Int64()
	t.Logf("%d messages, %d deliveries (re-deliveries after the kill are dropped by id)", total, deliveries)
	if deliveries < total {
		t.Fatalf("%d deliveries for %d messages", deliveries, total)
	}
}
