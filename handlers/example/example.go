// Package example is a small domain on the command pipeline: the users and
// groups of a company, as Go deciders registered by name.
//
// # Subjects
//
//	users.<company>.<user>.inserted                     {"name","username"}
//	users.<company>.<user>.apikeyset                    {"key"}
//	users.<company>.<user>.deleted                      {}
//	companies.<company>.usernames.<username>.claimed    {"user"}
//	companies.<company>.usernames.<username>.released   {"user"}
//	groups.<company>.<group>.members.<user>.added       {}
//	groups.<company>.<group>.members.<user>.removed     {}
//
// Every id is escaped into one token with [subjects.Escape].
//
// # Commands and rules
//
//   - InsertUser: the user id is new and the username is not claimed by
//     another user of the company. Its boundary is the user and the
//     username subject, so two users racing for one username cannot both
//     get it.
//   - SetAPIKey: the user exists and is not deleted; the key is not empty.
//   - AddUserToGroup: the user exists and is not deleted, and is not a
//     member of the group yet.
//   - RemoveUserFromGroup: the user is a member of the group.
//   - DeleteUser: the user exists, is not deleted, and is a member of no
//     group (its boundary includes groups.<company>.*.members.<user>.>).
//     The username is released and may be claimed again.
package example

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/state"
	"github.com/jetsource/jetsource/subjects"
)

// Option configures [Register].
type Option func(*config) error

type config struct {
	snaps state.SnapshotStore
	opts  []handlers.SnapshotOption
}

// WithSnapshots makes the commands load their models from snapshots kept
// in s ([handlers.Snapshots]) instead of reading every event of their
// boundary ([handlers.Replay], the default). Each command keeps its
// snapshots under its own model version, "example.<command>/1", which
// opts may not override.
func WithSnapshots(s state.SnapshotStore, opts ...handlers.SnapshotOption) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("%w: nil snapshot store", handlers.ErrInvalidOption)
		}
		c.snaps, c.opts = s, opts
		return nil
	}
}

// modelVersion is the version of the models of this package's commands:
// change it when a model or a fold changes.
const modelVersion = "1"

// handler returns the command name and the handler of its decider with
// the configured loader.
func handler[P, M any](c config, name string, d handlers.Decider[P, M]) (string, handlers.Handler, error) {
	if c.snaps == nil {
		return name, handlers.New(d), nil
	}
	opts := append(slices.Clone(c.opts), handlers.WithModelVersion("example."+name+"/"+modelVersion))
	h, err := handlers.NewWithSnapshots(d, c.snaps, opts...)
	return name, h, err
}

// Register registers the commands InsertUser, SetAPIKey, AddUserToGroup,
// RemoveUserFromGroup and DeleteUser.
//
// Options: [WithSnapshots]. It returns the registry's errors
// ([handlers.ErrInvalidOption] when a name is registered already) and
// [handlers.ErrInvalidOption] for a bad option.
func Register(r *handlers.Registry, opts ...Option) error {
	var c config
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return err
		}
	}
	hs := map[string]handlers.Handler{}
	var errs []error
	add := func(name string, h handlers.Handler, err error) {
		hs[name] = h
		errs = append(errs, err)
	}
	add(handler(c, "InsertUser", insertUser{}))
	add(handler(c, "SetAPIKey", setAPIKey{}))
	add(handler(c, "AddUserToGroup", addUserToGroup{}))
	add(handler(c, "RemoveUserFromGroup", removeUserFromGroup{}))
	add(handler(c, "DeleteUser", deleteUser{}))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(hs)) {
		if err := r.Register(n, hs[n]); err != nil {
			return err
		}
	}
	return nil
}

// InsertUser is the payload of the command InsertUser.
type InsertUser struct {
	Company  string `json:"company"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	Username string `json:"username"`
}

// SetAPIKey is the payload of the command SetAPIKey.
type SetAPIKey struct {
	Company string `json:"company"`
	ID      string `json:"id"`
	Key     string `json:"key"`
}

// Membership is the payload of AddUserToGroup and RemoveUserFromGroup.
type Membership struct {
	Company string `json:"company"`
	Group   string `json:"group"`
	User    string `json:"user"`
}

// DeleteUser is the payload of the command DeleteUser.
type DeleteUser struct {
	Company string `json:"company"`
	ID      string `json:"id"`
}

func user(company, id string) string {
	return "users." + subjects.Escape(company) + "." + subjects.Escape(id)
}

func username(company, name string) string {
	return "companies." + subjects.Escape(company) + ".usernames." + subjects.Escape(name)
}

func member(company, group, id string) string {
	return "groups." + subjects.Escape(company) + "." + group + ".members." + subjects.Escape(id)
}

func filters(prefixes ...string) ([]subjects.Filter, error) {
	fs := make([]subjects.Filter, len(prefixes))
	for i, p := range prefixes {
		f, err := subjects.ParseFilter(p + ".>")
		if err != nil {
			return nil, err
		}
		fs[i] = f
	}
	return fs, nil
}

func event(subject string, data any) (jetsource.Event, error) {
	s, err := subjects.Parse(subject)
	if err != nil {
		return jetsource.Event{}, err
	}
	b, err := json.Marshal(data)
	if err != nil {
		return jetsource.Event{}, err
	}
	return jetsource.Event{Subject: s, Data: b}, nil
}

func events(pairs ...any) ([]jetsource.Event, error) {
	out := make([]jetsource.Event, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		e, err := event(pairs[i].(string), pairs[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func required(fields ...string) error {
	var missing []string
	for i := 0; i < len(fields); i += 2 {
		if strings.TrimSpace(fields[i+1]) == "" {
			missing = append(missing, fields[i]+" is required")
		}
	}
	if len(missing) > 0 {
		return handlers.Reject(missing...)
	}
	return nil
}

// userState is what the user commands know of a user.
type userState struct {
	Exists, Deleted bool
	Username        string
}

func evolveUser(m userState, e jetsource.Event) userState {
	if !strings.HasPrefix(e.Subject.String(), "users.") {
		return m
	}
	switch e.Name() {
	case "inserted":
		var d struct {
			Username string `json:"username"`
		}
		_ = json.Unmarshal(e.Data, &d)
		m.Exists, m.Username = true, d.Username
	case "deleted":
		m.Deleted = true
	}
	return m
}

func (m userState) check(id string) error {
	switch {
	case !m.Exists:
		return handlers.Reject("user " + id + " does not exist")
	case m.Deleted:
		return handlers.Reject("user " + id + " is deleted")
	}
	return nil
}

type insertModel struct {
	User  userState
	Owner string // the user holding the username, if any
}

type insertUser struct{}

func (insertUser) Query(p InsertUser) ([]subjects.Filter, error) {
	if err := required("company", p.Company, "id", p.ID, "username", p.Username); err != nil {
		return nil, err
	}
	return filters(user(p.Company, p.ID), username(p.Company, p.Username))
}
func (insertUser) Initial() insertModel { return insertModel{} }
func (insertUser) Evolve(m insertModel, e jetsource.Event) insertModel {
	m.User = evolveUser(m.User, e)
	if strings.HasPrefix(e.Subject.String(), "companies.") {
		var d struct {
			User string `json:"user"`
		}
		_ = json.Unmarshal(e.Data, &d)
		switch e.Name() {
		case "claimed":
			m.Owner = d.User
		case "released":
			m.Owner = ""
		}
	}
	return m
}
func (insertUser) Decide(m insertModel, p InsertUser) ([]jetsource.Event, error) {
	var reasons []string
	if m.User.Exists {
		reasons = append(reasons, "user "+p.ID+" exists")
	}
	if m.Owner != "" && m.Owner != p.ID {
		reasons = append(reasons, fmt.Sprintf("username %s is taken in company %s", p.Username, p.Company))
	}
	if len(reasons) > 0 {
		return nil, handlers.Reject(reasons...)
	}
	return events(
		user(p.Company, p.ID)+".inserted", map[string]string{"name": p.Name, "username": p.Username},
		username(p.Company, p.Username)+".claimed", map[string]string{"user": p.ID},
	)
}

type setAPIKey struct{}

func (setAPIKey) Query(p SetAPIKey) ([]subjects.Filter, error) {
	if err := required("company", p.Company, "id", p.ID, "key", p.Key); err != nil {
		return nil, err
	}
	return filters(user(p.Company, p.ID))
}
func (setAPIKey) Initial() userState                              { return userState{} }
func (setAPIKey) Evolve(m userState, e jetsource.Event) userState { return evolveUser(m, e) }
func (setAPIKey) Decide(m userState, p SetAPIKey) ([]jetsource.Event, error) {
	if err := m.check(p.ID); err != nil {
		return nil, err
	}
	return events(user(p.Company, p.ID)+".apikeyset", map[string]string{"key": p.Key})
}

type memberModel struct {
	User   userState
	Member bool
}

func evolveMember(m memberModel, e jetsource.Event) memberModel {
	m.User = evolveUser(m.User, e)
	if strings.HasPrefix(e.Subject.String(), "groups.") {
		m.Member = e.Name() == "added"
	}
	return m
}

func membershipQuery(p Membership, withUser bool) ([]subjects.Filter, error) {
	if err := required("company", p.Company, "group", p.Group, "user", p.User); err != nil {
		return nil, err
	}
	g := subjects.Escape(p.Group)
	if withUser {
		return filters(user(p.Company, p.User), member(p.Company, g, p.User))
	}
	return filters(member(p.Company, g, p.User))
}

type addUserToGroup struct{}

func (addUserToGroup) Query(p Membership) ([]subjects.Filter, error) {
	return membershipQuery(p, true)
}
func (addUserToGroup) Initial() memberModel                                { return memberModel{} }
func (addUserToGroup) Evolve(m memberModel, e jetsource.Event) memberModel { return evolveMember(m, e) }
func (addUserToGroup) Decide(m memberModel, p Membership) ([]jetsource.Event, error) {
	if err := m.User.check(p.User); err != nil {
		return nil, err
	}
	if m.Member {
		return nil, handlers.Reject(fmt.Sprintf("user %s is already a member of group %s", p.User, p.Group))
	}
	return events(member(p.Company, subjects.Escape(p.Group), p.User)+".added", struct{}{})
}

type removeUserFromGroup struct{}

func (removeUserFromGroup) Query(p Membership) ([]subjects.Filter, error) {
	return membershipQuery(p, false)
}
func (removeUserFromGroup) Initial() memberModel { return memberModel{} }
func (removeUserFromGroup) Evolve(m memberModel, e jetsource.Event) memberModel {
	return evolveMember(m, e)
}
func (removeUserFromGroup) Decide(m memberModel, p Membership) ([]jetsource.Event, error) {
	if !m.Member {
		return nil, handlers.Reject(fmt.Sprintf("user %s is not a member of group %s", p.User, p.Group))
	}
	return events(member(p.Company, subjects.Escape(p.Group), p.User)+".removed", struct{}{})
}

type deleteModel struct {
	User   userState
	Groups map[string]bool
}

type deleteUser struct{}

func (deleteUser) Query(p DeleteUser) ([]subjects.Filter, error) {
	if err := required("company", p.Company, "id", p.ID); err != nil {
		return nil, err
	}
	return filters(user(p.Company, p.ID), member(p.Company, "*", p.ID))
}
func (deleteUser) Initial() deleteModel { return deleteModel{Groups: map[string]bool{}} }
func (deleteUser) Evolve(m deleteModel, e jetsource.Event) deleteModel {
	m.User = evolveUser(m.User, e)
	if strings.HasPrefix(e.Subject.String(), "groups.") {
		m.Groups[e.Subject.Token(2)] = e.Name() == "added"
	}
	return m
}
func (deleteUser) Decide(m deleteModel, p DeleteUser) ([]jetsource.Event, error) {
	if err := m.User.check(p.ID); err != nil {
		return nil, err
	}
	var groups []string
	for g, in := range m.Groups {
		if in {
			name, _ := subjects.Unescape(g)
			groups = append(groups, name)
		}
	}
	if len(groups) > 0 {
		slices.Sort(groups)
		return nil, handlers.Reject(fmt.Sprintf("user %s is a member of the groups %s: remove it from them first", p.ID, strings.Join(groups, ", ")))
	}
	return events(
		user(p.Company, p.ID)+".deleted", struct{}{},
		username(p.Company, m.User.Username)+".released", map[string]string{"user": p.ID},
	)
}
