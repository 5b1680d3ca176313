// Package handlers is the command side of jetsource: commands decided on the
// events they depend on, recorded under a consistency condition, and a
// command bus over NATS request/reply.
//
// # The pipeline
//
// Each command runs the same pipeline: query, replay, build a small model,
// check the rules, generate events, record them.
//
//   - The command's [Decider] names the events its decision depends on as
//     subject filters, often derived from the payload: users.<id>.> for the
//     user, companies.<c>.usernames.<name>.> for a username that must be
//     unique. These filters are the command's consistency boundary.
//   - The events matching them are read up to the last one stored and folded
//     into a model of the decider's own ([Decider.Evolve]); there is no
//     application-wide model.
//   - [Decider.Decide] checks the rules against the model and returns the
//     events to record, or a refusal from [Reject] with the reasons.
//   - The [Processor] appends the events on the condition that nothing
//     matching the filters was stored after the read
//     ([jetsource.ExpectNoneAfter]): one event with Append, several as one
//     transaction with AppendBatch. If the condition fails, another command
//     changed what this one decided on: the Processor reads and decides
//     again, after a short random wait, up to [WithMaxAttempts] times.
//
// Within one processor, commands of typed deciders that decide on the same
// filters queue for each other ([WithSerialBoundaries], on by default), so a
// busy aggregate costs waiting rather than lost races; the append's
// condition still guards against every other writer.
//
// Every command answers a [Result] envelope: accepted with the sequences of
// its events, rejected with the reasons, conflict when every attempt lost
// the race, or error. Commands return no other payload.
//
// # Idempotency
//
// A command has an id. Its events carry it as their causation id (and the
// command name as the extension "command"), and their event ids derive
// from the command's name and id. A command sent again with the same id,
// say after a timeout, is therefore executed once:
//
//   - when the replay meets events the command recorded before, the result
//     is the original one, with Duplicate set, and nothing is decided;
//   - when its events lie outside its own query, the decision is made
//     again and the stream's de-duplication (Nats-Msg-Id, within the
//     stream's duplicate window, two minutes by default) recognises the
//     event ids.
//
// # The bus
//
// [Serve] serves a processor's commands on the subjects cmd.<name> (the
// prefix is configurable) in a queue group, so that several workers share
// them. A request's body is the JSON payload; its headers carry the command
// id, the actor, the correlation id and the causation id under their
// CloudEvents names (ce-id, ce-actor, ce-correlationid, ce-causationid). The
// reply is the Result as JSON. [Client.Send] sends a command and returns
// its result; a name no worker serves fails at once with
// [ErrUnknownCommand] (NATS reports no responders).
//
// A command carries its sender's deadline ([HeaderDeadline]: the ctx's,
// or the client's request timeout). A worker that takes it after the
// deadline does not execute it (the result is an error matching
// [ErrExpired], counted by [Server.Expired]), and a command under way
// records no events once its deadline has passed: nothing is committed
// after the client gave up.
//
// # Malformed messages and panics
//
// A message in the stream that is no valid event
// ([jetsource.Event.Malformed]) never reaches a decider or a reaction:
// decisions ([Replay], [SnapshotLoader]) do not fold it (their read
// position still passes it, so it cannot make a condition fail), and a
// rule's worker dead-letters it as every [subscriber.Subscriber] does. A
// decider that panics in Query, Evolve or Decide fails its command with
// an error result (the panic and stack are logged); a reaction that
// panics is retried and then dead-lettered with the panic and the stack.
// No panic ends the worker or the process.
//
// # Payload schemas
//
// With [WithSchemas], the payload of each command is checked against the
// JSON Schema registered for the command's name before anything is read:
// a directory loaded with [jetsource.LoadSchemas] holding InsertUser.json
// checks InsertUser. A payload that breaks it is rejected with the
// violation as the reason.
//
// # Rules and reactions
//
// The event side of the package turns events into follow-on commands. A
// rule file ([LoadRules], [ParseRules]; YAML or JSON) lists handlers, each
// naming the events it reacts to (on: subject filters, optionally
// narrowed by entities and a when expression) and what it does: send a
// command built from a payload template (do:) or call a [Reaction]
// registered in Go by name (go:, [Reactions]):
//
//	handlers:
//	  - name: join-default-group
//	    on: users.*.*.inserted
//	    do:
//	      command: AddUserToGroup
//	      payload: {company: "${ unescape(event.tokens[1]) }", group: default, user: "${ unescape(event.tokens[2]) }"}
//	    flag: join-default-group
//	    when_off: pause
//
// Everything is checked when the file is loaded, before anything runs:
// expressions are compiled ([ErrInvalidExpression]), a do rule may name
// only the commands given to [WithCommands] ([ErrUnknownCommand]), a go
// rule only the reactions given to [WithReactions] ([ErrUnknownReaction]).
// Every problem is a [*RuleError] matching [ErrInvalidRules], with the
// file, line and field; no rule is returned when there is one.
//
// A [Reactor] runs the rules ([NewReactor]): one durable worker per rule,
// the consumer handler-<name> of a [subscriber.Subscriber], which hands
// each matching event to [Rule.React] and sends the follow-on commands
// through a [Sender] (a [*Client] over the bus, or a [*Processor] in the
// same process). Delivery is at least once, and a follow-on command's id
// is derived from the rule, the event and the command's rank
// ([FollowOnID]), so handling an event again executes its commands once.
// The commands carry the event's id as causation id and its correlation
// id. A rejected command is a business outcome and the event is done
// with; an unreachable worker, a conflict or an error retries the event
// after the rule's backoff, up to max_deliver deliveries, then it is
// dead-lettered; an expression that fails on an event dead-letters it at
// once.
//
// A rule with a flag is gated by a feature flag read from [WithFlags] (a
// [*flags.Set] watching its bucket in production): while the flag is off
// the worker skips the events (when_off: skip, the default) or pauses at
// the first one and resumes in order, without a restart, within moments
// of the flag turning on (when_off: pause).
//
// # Seams
//
// The processor depends on small interfaces: a [Store] (Read, Append,
// AppendBatch) and, for decisions, a [Reader] ([WithReader]). A typed
// decider's model is built by a [Loader]; [Replay] reads every matching
// event, and a loader that starts from a snapshot can replace it per
// command with [NewWithLoader].
package handlers
