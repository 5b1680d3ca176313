package jetstore

// SetBeforePublish makes st run f before each publish of a conditioned
// append or batch, after the reads that decide it: the moment another
// writer can step in. Tests only; set it before st is used.
func SetBeforePublish(st *Store, f func()) { st.beforePublish = f }

// MapErr translates err as the store does where a nats.go or server error
// enters it.
func MapErr(err error) error { return mapErr(nil, err) }

// Transient reports whether the store asks again after err.
func Transient(err error) bool { return transient(err) }

// SetLoseAck makes st ask f after each answered publish or batch commit
// whether to drop the answer, as a connection lost after the server stored
// the message would. Tests only; set it before st is used.
func SetLoseAck(st *Store, f func() bool) { st.loseAck = f }
