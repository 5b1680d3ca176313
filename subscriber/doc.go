// Package subscriber runs durable workers over an event stream: a
// [Subscriber] handles every event matching its filters through a durable
// JetStream pull consumer with explicit acknowledgements, retries failures
// with backoff without blocking other aggregates, dead-letters events that
// keep failing, and keeps each aggregate's order.
//
//	sub, err := subscriber.New(js, "EVENTS", "mailer", func(ctx context.Context, e jetsource.Event) error {
//		return sendMail(ctx, e)
//	}, subscriber.WithFilters(subjects.MustParseFilter("users.*.added")), subscriber.WithConcurrency(16))
//	...
//	err = sub.Run(ctx) // until ctx ends, then drains
//
// [Replay] is the ephemeral counterpart for reads: it hands a
// [jetsource.Store]'s events to a handler in stream order, with nothing
// durable on the server.
//
// # Acknowledgement
//
// An event is acknowledged only after its handler returned nil. A handler
// error, a panic or a decoding failure never acknowledges. Delivery is at
// least once: an event is handled again when its acknowledgement is lost
// (a connection failure right after the handler returned) or when the
// instance stops before acknowledging it, so handlers must be idempotent;
// [jetsource.Event.Sequence] is a natural key ("skip what I applied").
// While a handler runs, and while an event waits in the subscriber's hands,
// the subscriber tells the server it is in progress every third of the ack
// wait ([WithAckWait]), so a handler may take longer than the ack wait
// without the event going to another worker.
//
// # Retries and dead letters
//
// A failed event is handed back to the server with a negative
// acknowledgement carrying the backoff delay ([WithBackoff]; the n-th
// failure waits the n-th delay, the last one repeating), and the server
// delivers it again after that delay. Nothing sleeps in a handler slot:
// other aggregates keep flowing meanwhile. The server counts the
// deliveries, so the count survives crashes and restarts. When the
// delivery that reaches [WithMaxDeliver] fails (or at once for an error
// matching [ErrPermanent], or for a message that does not decode as an
// event), the subscriber stores a copy of the event in the dead-letter
// stream, waits for the stream's acknowledgement, and only then
// terminates the event on the consumer. If the dead letter cannot be
// stored, the event is retried instead: it is never dropped. The
// consumer's own MaxDeliver is unlimited, so the server never gives up
// on an event silently.
//
// # Malformed messages and panics
//
// Any NATS client can store a message in the stream that is no valid
// event (a foreign spec version, a JSON content type with a body that is
// not JSON, a wildcard token in the subject, see
// [jetsource.DecodeStored]). The handler is never called with one: it is
// dead-lettered at once with [HeaderMalformed] (the reason) and its
// headers and body as stored, and the worker goes on. Event data that a
// [JSON] handler cannot decode is dead-lettered at once too
// ([ErrInvalidData]). A handler that panics is recovered: the panic is an
// error ([*PanicError], [ErrPanic]) retried like any other, and the dead
// letter after the last delivery carries the panic in [HeaderError] and
// the stack in [HeaderStack]. Neither stops the worker or the process.
//
// # Where dead letters go
//
// An event on users.A.added is dead-lettered on
// deadletter.<durable>.users.A.added ([WithDeadLetter] sets the prefix),
// stored in the stream DEADLETTER ([WithDeadLetterStream]), which
// [Subscriber.Start] creates when missing (capturing <prefix>.>) or
// extends with the prefix. A dead letter keeps the event's body and its
// ce-* and Content-Type headers, so it still decodes as the event, and
// adds [HeaderError], [HeaderDeliveries], [HeaderStream],
// [HeaderSequence], [HeaderSubject], [HeaderConsumer], [HeaderTime],
// [HeaderMsgID], and [HeaderMalformed] or [HeaderStack] when they
// apply. The event stream must not capture the dead-letter subjects; Start refuses with [ErrDeadLetterCaptured] if it does. Read
// them with any consumer on the dead-letter stream, filter
// deadletter.<durable>.users.A.> for one aggregate.
//
// # Order
//
// Events are spread over [WithConcurrency] lanes by a hash of their
// aggregate (the subject without its last token), and a lane handles one
// event at a time, so the events of one aggregate are never handled
// concurrently by one instance and are handled in stream order.
//
// Retries keep that order. When event k of an aggregate fails, the lane
// records a pending retry for the aggregate, and every later event of the
// aggregate delivered meanwhile is held back in the lane, unacknowledged
// and kept in progress, until k is delivered again and succeeds or is
// dead-lettered; then the held events are handled in stream order. Events
// of other aggregates, in the same lane or not, go on meanwhile. The
// guarantee, for one instance per durable: a handler is called for event
// k+1 of an aggregate only after event k returned nil or was
// dead-lettered, except when event k is redelivered after event k+1 was
// acknowledged because an acknowledgement of k was lost.
//
// At [Subscriber.Stop] the events not started are handed back in stream
// order, each delayed so that it is delivered again after the event it
// follows: behind a pending retry, by the retry's remaining delay plus a
// second; behind a handler that did not finish by the drain deadline, by
// the ack wait plus a second; otherwise at once. A new instance therefore
// resumes each aggregate in order.
//
// Several instances sharing a durable share the work (JetStream gives each
// delivery to one puller), and an event is never handled by two of them at
// once as long as the instances stay connected. Per-aggregate order holds
// within each instance but not across them: two events of one aggregate
// can go to two instances. An instance waiting for a retry that the
// server gave to another instance stops holding the aggregate back after
// the retry delay plus twice the ack wait (the wait does not run out while
// the connection is down), and logs it. When order across instances
// matters, use [WithExclusive]: the instances then take turns (a
// JetStream pinned-client priority group), one handles everything with
// the guarantee above, and another takes over within the given time once
// it stops or disconnects.
//
// Held-back events count against [WithMaxAckPending]: an aggregate with
// a pending retry and a flood of new events can fill it, and the server
// then pauses new deliveries of the durable (retries still flow) until the
// retry settles, which the backoff schedule bounds.
//
// # Shutdown
//
// [Subscriber.Stop] (and [Subscriber.Close], [Subscriber.Run] when its
// context ends) stops fetching, lets the running handlers finish and
// acknowledges their events, hands back the rest as described above, and
// returns within the drain timeout ([WithDrainTimeout]) or the context's
// deadline. Handlers still running then see their context cancelled and
// Stop returns [ErrDrainTimeout]; their events are delivered again after
// the ack wait.
//
// # Lag
//
// [Subscriber.Lag] reports the durable's backlog as the server counts it
// (events not yet delivered plus delivered and unacknowledged), the last
// delivered sequence and the acknowledgement floor, and the last sequence
// this instance acknowledged.
//
// # Reconnection
//
// The subscriber keeps consuming across server restarts and reconnects:
// the durable consumer lives on the server, and nats.go resumes pulling
// once the connection is back. Acknowledgements lost in the outage make
// their events delivered again.
package subscriber
