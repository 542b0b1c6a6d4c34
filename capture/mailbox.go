package capture

import (
	"context"
	"sync"

	"github.com/danstream/danstream/frame"
)

// mailbox is the one-slot hand-off between the capture goroutine and the
// consumer: put overwrites an untaken frame (counting it as dropped), so memory
// stays bounded however slow the consumer is.
type mailbox struct {
	mu     sync.Mutex
	slot   frame.Frame
	full   bool
	err    error // terminal: returned once the slot is empty
	stats  Stats
	notify chan struct{} // capacity 1: "something changed"
}

func newMailbox() *mailbox { return &mailbox{notify: make(chan struct{}, 1)} }

func (m *mailbox) put(f frame.Frame) {
	m.mu.Lock()
	m.stats.Captured++
	if m.full {
		m.stats.Dropped++
		// A dropped Reset frame must not hide the reset from the consumer,
		// or caches keyed on pre-reconnect frames would be reused.
		f.Reset = f.Reset || m.slot.Reset
	}
	m.slot, m.full = f, true
	m.mu.Unlock()
	m.wake()
}

// finish records the terminal error; frames already in the slot are still delivered.
func (m *mailbox) finish(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
	m.wake()
}

func (m *mailbox) wake() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *mailbox) next(ctx context.Context) (frame.Frame, error) {
	for {
		m.mu.Lock()
		if m.full {
			f := m.slot
			m.slot, m.full = frame.Frame{}, false
			m.stats.Delivered++
			m.mu.Unlock()
			return f, nil
		}
		if m.err != nil {
			err := m.err
			m.mu.Unlock()
			return frame.Frame{}, err
		}
		m.mu.Unlock()
		select {
		case <-m.notify:
		case <-ctx.Done():
			return frame.Frame{}, ctx.Err()
		}
	}
}

func (m *mailbox) note(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

func (m *mailbox) snapshot() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// shut makes every later next return err at once, discarding an untaken frame.
func (m *mailbox) shut(err error) {
	m.mu.Lock()
	m.slot, m.full, m.err = frame.Frame{}, false, err
	m.mu.Unlock()
	m.wake()
}
