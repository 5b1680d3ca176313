package embeddedtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetsource/jetsource/embedded"
)

// clusterTimeout bounds how long RunCluster waits for the nodes to start
// and the cluster to form. It usually takes 2-5 seconds; the bound is for a
// cluster that never forms, generous for a machine loaded with other
// work.
const clusterTimeout = time.Minute

// clusterPoll is how often RunCluster looks whether the cluster formed.
const clusterPoll = 25 * time.Millisecond

// clusters numbers the clusters of this process, so that each has a name
// of its own.
var clusters atomic.Int64

// RunCluster starts a JetStream cluster of n embedded servers in this
// process, on loopback, and shuts every node down when the test ends. Use
// it to test what only a replicated stream shows (such as a stream with
// Replicas 3), where [Run] gives a single server.
//
//	func TestReplicated(t *testing.T) {
//		nodes := embeddedtest.RunCluster(t, 3)
//		nc := embeddedtest.Connect(t, nodes[0])
//		js, _ := jetstream.New(nc)
//		// ... create a stream with Replicas: 3
//	}
//
// Each node is named n1, n2, ... and has a random client port, a data
// directory of its own (tb.TempDir) and lazy syncing (every second), as
// with [Run]. The nodes share a cluster name unique in the process and
// route to each other on loopback ports that RunCluster reserves by
// listening on port 0 and closing the listener; another process could take
// such a port in between, which fails the start.
//
// RunCluster returns once every node accepts connections, a JetStream
// meta leader is elected, it sees all n nodes as peers, and every node is
// current with it: a stream with up to n replicas can be created at once.
// It fails the test when that takes longer than about a minute. The
// servers are returned in name order. With n = 1 the one node runs
// JetStream on its own, without clustering (a cluster of one would wait
// for peers), as with Run.
//
// Options are applied to every node after those defaults. Options that
// must differ between nodes ([embedded.WithName], [embedded.WithDataDir],
// a fixed [embedded.WithListen] port) would break the cluster; use
// [embedded.WithServerOptions] to adjust the rest.
func RunCluster(tb testing.TB, n int, opts ...embedded.Option) []*embedded.Server {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("embedded cluster: %d nodes, need at least 1", n)
	}
	// A cluster of one would wait for peers that never come: one node
	// runs JetStream on its own, as with Run.
	nports := n
	if n == 1 {
		nports = 0
	}
	ports, err := reservePorts(nports)
	if err != nil {
		tb.Fatalf("embedded cluster: reserve route ports: %v", err)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	routeList := strings.Join(routes, ",")
	name := fmt.Sprintf("jetsource-test-%d", clusters.Add(1))

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	servers := make([]*embedded.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		var port int
		if n > 1 {
			port = ports[i]
		}
		base := []embedded.Option{
			embedded.WithListen("127.0.0.1:0"),
			embedded.WithDataDir(tb.TempDir()),
			embedded.WithSyncInterval(time.Second),
			embedded.WithName(fmt.Sprintf("n%d", i+1)),
		}
		if n > 1 {
			base = append(base, embedded.WithServerOptions(func(o *server.Options) error {
				o.Cluster.Name = name
				o.Cluster.Host = "127.0.0.1"
				o.Cluster.Port = port
				o.Routes = server.RoutesFromStr(routeList)
				return nil
			}))
		}
		all := append(base, opts...)
		// The nodes start together: none waits for the others to be
		// reachable, but starting them in turn costs time.
		wg.Go(func() {
			servers[i], errs[i] = embedded.Start(ctx, all...)
		})
	}
	wg.Wait()
	tb.Cleanup(func() { shutdownAll(servers) })
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("node n%d: %w", i+1, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("embedded cluster: %v", err)
	}
	if err := waitClusterReady(ctx, servers); err != nil {
		tb.Fatalf("embedded cluster: %v", err)
	}
	return servers
}

// reservePorts returns n distinct free loopback ports: it listens on port
// 0 n times at once, then closes the listeners.
func reservePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// shutdownAll stops the servers that started, all at once.
func shutdownAll(servers []*embedded.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		if s != nil {
			wg.Go(s.Shutdown)
		}
	}
	wg.Wait()
}

// waitClusterReady polls until a meta leader sees every node as a peer and
// every node is current, or ctx ends.
func waitClusterReady(ctx context.Context, servers []*embedded.Server) error {
	tick := time.NewTicker(clusterPoll)
	defer tick.Stop()
	for {
		state, ready := clusterState(servers)
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %s", clusterTimeout, state)
		case <-tick.C:
		}
	}
}

// clusterState describes the cluster's progress and reports whether it is
// ready.
func clusterState(servers []*embedded.Server) (string, bool) {
	var leader *server.Server
	var current []string
	for _, s := range servers {
		ns := s.NATSServer()
		if !ns.JetStreamEnabled() {
			return ns.Name() + " has no JetStream yet", false
		}
		if len(servers) == 1 {
			return "", true
		}
		if !ns.JetStreamIsClustered() {
			return ns.Name() + " is not clustered yet", false
		}
		if ns.JetStreamIsLeader() {
			leader = ns
		}
		if ns.JetStreamIsCurrent() {
			current = append(current, ns.Name())
		}
	}
	if leader == nil {
		return "no meta leader elected", false
	}
	peers := len(leader.JetStreamClusterPeers())
	state := fmt.Sprintf("meta leader %s sees %d of %d peers; current: %v", leader.Name(), peers, len(servers), current)
	return state, peers == len(servers) && len(current) == len(servers)
}
