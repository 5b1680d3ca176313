package embedded_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

func mqttClient(t *testing.T, addr, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect to %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// An MQTT subscriber receives an event appended through jetsource, on the
// topic of its subject; an MQTT client cannot publish into the event
// stream, only to the subjects WithMQTTPublish allows; NATS clients
// connect without credentials as before.
func TestMQTT(t *testing.T) {
	s := embeddedtest.Run(t, embedded.WithMQTT("127.0.0.1:0"), embedded.WithMQTTPublish("probe.>"))
	if s.MQTTAddr() == "" {
		t.Fatal("no MQTT address")
	}
	nc := embeddedtest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}); err != nil {
		t.Fatal(err)
	}
	store, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}

	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("QoS%d", qos), func(t *testing.T) {
			c := mqttClient(t, s.MQTTAddr(), fmt.Sprintf("sub-%d", qos))
			got := make(chan mqtt.Message, 4)
			if tok := c.Subscribe("users/+/added", qos, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			agg := fmt.Sprintf("q%d", qos)
			if _, err := store.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users." + agg + ".added"), Data: []byte(`{"name":"Ann"}`)}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if m.Topic() != "users/"+agg+"/added" || string(m.Payload()) != `{"name":"Ann"}` {
					t.Fatalf("got %s %s", m.Topic(), m.Payload())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no message")
			}
		})
	}

	t.Run("PublishRefused", func(t *testing.T) {
		events := make(chan *nats.Msg, 4)
		sub, err := nc.ChanSubscribe("users.>", events)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		probe := make(chan *nats.Msg, 1)
		psub, err := nc.ChanSubscribe("probe.>", probe)
		if err != nil {
			t.Fatal(err)
		}
		defer psub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		before, err := store.LastSequence(ctx, subjects.All())
		if err != nil {
			t.Fatal(err)
		}
		c := mqttClient(t, s.MQTTAddr(), "writer")
		c.Publish("users/mallory/added", 0, false, `{"name":"Mallory"}`).WaitTimeout(5 * time.Second)
		// Published after, on the same connection: once it arrived, the
		// first was handled.
		c.Publish("probe/x", 0, false, "after").WaitTimeout(5 * time.Second)
		select {
		case m := <-probe:
			if m.Subject != "probe.x" || string(m.Data) != "after" {
				t.Fatalf("probe: %s %s", m.Subject, m.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the allowed publish did not arrive")
		}
		select {
		case m := <-events:
			t.Fatalf("an MQTT client published %s", m.Subject)
		default:
		}
		if after, err := store.LastSequence(ctx, subjects.All()); err != nil || after != before {
			t.Fatalf("last sequence %d, want %d (%v)", after, before, err)
		}
	})
}

func TestWithMQTTErrors(t *testing.T) {
	for _, addr := range []string{"1883", "host:port", "127.0.0.1:70000"} {
		if _, err := embedded.Start(context.Background(), embedded.WithMQTT(addr)); err == nil {
			t.Errorf("WithMQTT(%q): no error", addr)
		}
	}
}
