package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// serve with mqtt.listen: an MQTT subscriber receives the events appended
// through jetsource; an MQTT publish on the stream's subjects stores
// nothing.
func TestServeMQTT(t *testing.T) {
	cfg, err := parseConfig("mqtt.yaml", []byte("mqtt:\n  listen: 127.0.0.1:0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Listen, cfg.Server.Data, cfg.Server.Sync = freeAddr(t), t.TempDir(), "1s"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartServe(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if s.MQTTAddr() == "" {
		t.Fatal("no MQTT listener")
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + s.MQTTAddr()).SetClientID("serve-test").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	got := make(chan mqtt.Message, 4)
	if tok := c.Subscribe("users/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// A publish from MQTT is refused: nothing stored.
	c.Publish("users/mallory/added", 1, false, `{}`).WaitTimeout(2 * time.Second)

	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := jetstore.New(ctx, js, cfg.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, jetsource.Event{Subject: subjects.MustParse("users.A.added"), Data: []byte(`{"name":"Ann"}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != "users/A/added" || string(m.Payload()) != `{"name":"Ann"}` {
			t.Fatalf("got %s %s, want users/A/added with the event's data", m.Topic(), m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the MQTT subscriber got nothing")
	}
	var names []string
	for e, err := range st.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Subject.String())
	}
	if strings.Join(names, " ") != "users.A.added" {
		t.Fatalf("stored %v, want only users.A.added", names)
	}
}

func TestMQTTConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"mqtt:\n  listen: 1883\n", "is not host:port"},
		{"mqtt:\n  publish: [sensors.>]\n", "needs mqtt.listen"},
		{"mqtt:\n  listen: 127.0.0.1:1883\n  publish: ['a..b']\n", "mqtt.publish"},
		{"mqtt:\n  port: 1883\n", "port"},
	} {
		cfg, err := parseConfig("mqtt.yaml", []byte(tc.body), nil)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.body, err, tc.want)
		}
	}
}
