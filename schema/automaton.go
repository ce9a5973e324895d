package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// A content model (nested sequences and choices with occurrence bounds) is
// compiled to a deterministic automaton over child element names: particles
// become a Thompson NFA with minOccurs/maxOccurs unrolled into copies, and
// subset construction makes it a DFA. Validation is then one table lookup
// per child element, with no allocation and no backtracking, and the
// automaton is exact for nested optional groups and unbounded repeats.
//
// Subset construction also reveals schemas XSD forbids: if, in some state,
// one element name could be matched by two different particles, the model
// violates Unique Particle Attribution, and Compile rejects it as any XSD
// processor would.

// maxStates bounds the automata so a schema with large occurrence counts
// fails to compile instead of exhausting memory.
const maxStates = 100000

// maxSubsetWork bounds the total size of the DFA's state sets. Unrolling a
// nullable group, as in (a?){0,10000}, makes every set span all copies and
// the construction quadratic; past this budget Compile gives up with an
// error rather than spend seconds or gigabytes.
const maxSubsetWork = 1 << 19

func errTooLarge() error {
	return errors.New("content model too large to compile (reduce maxOccurs, especially on groups that can be empty)")
}

type xmlName struct{ ns, local string }

type symbol struct {
	name xmlName
	decl *elementDecl
}

type contentModel struct {
	symbols []symbol // in schema order, so messages list names in that order
	index   map[xmlName]int
	byLocal map[string]int // to diagnose right name, wrong namespace
	trans   []int32        // state*len(symbols)+symbol → next state or -1
	// owner is, parallel to trans, the element particle a transition
	// matches (unique, by UPA); ownerMax is that particle's maxOccurs.
	owner    []int32
	ownerMax []int
	accept   []bool
	// maxCount is the most times each symbol can occur in one valid
	// content (-1: unbounded); exceeding it is a RepeatedElement.
	maxCount []int
	// toAccept is, per state, the first symbol of a shortest path to an
	// accepting state (-1 if accepting or if none exists).
	toAccept []int32
}

func (m *contentModel) next(state, sym int) int {
	return int(m.trans[state*len(m.symbols)+sym])
}

type nfa struct {
	eps   [][]int32
	sym   []int32 // the labelled edge of a state: symbol, or -1
	to    []int32
	owner []int32 // the element particle the labelled edge belongs to
}

func (n *nfa) state() (int32, error) {
	if len(n.sym) >= maxStates {
		return 0, errTooLarge()
	}
	n.eps = append(n.eps, nil)
	n.sym = append(n.sym, -1)
	n.to = append(n.to, -1)
	n.owner = append(n.owner, -1)
	return int32(len(n.sym) - 1), nil
}

type modelBuilder struct {
	m        *contentModel
	n        nfa
	particle map[*particle]int32 // element particle ids, for the UPA check
}

// buildModel compiles a particle tree (nil: empty content).
func buildModel(p *particle) (*contentModel, error) {
	b := &modelBuilder{
		m:        &contentModel{index: map[xmlName]int{}, byLocal: map[string]int{}},
		particle: map[*particle]int32{},
	}
	if err := b.collect(p); err != nil {
		return nil, err
	}
	start, err := b.n.state()
	if err != nil {
		return nil, err
	}
	end := start
	if p != nil {
		s, e, err := b.repeat(p)
		if err != nil {
			return nil, err
		}
		b.n.eps[start] = append(b.n.eps[start], s)
		end = e
	}
	if err := b.determinize(start, end); err != nil {
		return nil, err
	}
	m := b.m
	m.maxCount = make([]int, len(m.symbols))
	for i, s := range m.symbols {
		m.maxCount[i] = maxCount(p, s.name)
	}
	m.computeToAccept()
	return m, nil
}

// collect assigns symbols in schema order and checks that one name has one
// type within the model (XSD's Element Declarations Consistent).
func (b *modelBuilder) collect(p *particle) error {
	if p == nil {
		return nil
	}
	if p.kind != partElement {
		for _, c := range p.children {
			if err := b.collect(c); err != nil {
				return err
			}
		}
		return nil
	}
	b.particle[p] = int32(len(b.particle))
	b.m.ownerMax = append(b.m.ownerMax, p.max)
	name := xmlName{p.elem.ns, p.elem.name}
	if i, ok := b.m.index[name]; ok {
		prev := b.m.symbols[i].decl
		if prev.simple != p.elem.simple || prev.complex != p.elem.complex {
			return fmt.Errorf("element %q is declared twice in one content model with different types", name.local)
		}
		return nil
	}
	b.m.index[name] = len(b.m.symbols)
	if _, ok := b.m.byLocal[name.local]; !ok {
		b.m.byLocal[name.local] = len(b.m.symbols)
	}
	b.m.symbols = append(b.m.symbols, symbol{name: name, decl: p.elem})
	return nil
}

// repeat builds p with its occurrence bounds: min required copies, then
// either a loop or max-min optional copies.
func (b *modelBuilder) repeat(p *particle) (start, end int32, err error) {
	if start, err = b.n.state(); err != nil {
		return
	}
	cur := start
	for i := 0; i < p.min; i++ {
		s, e, err := b.once(p)
		if err != nil {
			return 0, 0, err
		}
		b.n.eps[cur] = append(b.n.eps[cur], s)
		cur = e
	}
	if p.max == unbounded {
		s, e, err := b.once(p)
		if err != nil {
			return 0, 0, err
		}
		b.n.eps[cur] = append(b.n.eps[cur], s)
		b.n.eps[e] = append(b.n.eps[e], cur)
		return start, cur, nil
	}
	if end, err = b.n.state(); err != nil {
		return
	}
	for i := p.min; i < p.max; i++ {
		s, e, err := b.once(p)
		if err != nil {
			return 0, 0, err
		}
		b.n.eps[cur] = append(b.n.eps[cur], end, s)
		cur = e
	}
	b.n.eps[cur] = append(b.n.eps[cur], end)
	return start, end, nil
}

// once builds one occurrence of p.
func (b *modelBuilder) once(p *particle) (start, end int32, err error) {
	if start, err = b.n.state(); err != nil {
		return
	}
	switch p.kind {
	case partElement:
		if end, err = b.n.state(); err != nil {
			return
		}
		b.n.sym[start] = int32(b.m.index[xmlName{p.elem.ns, p.elem.name}])
		b.n.to[start] = end
		b.n.owner[start] = b.particle[p]
	case partSequence:
		end = start
		for _, c := range p.children {
			s, e, err := b.repeat(c)
			if err != nil {
				return 0, 0, err
			}
			b.n.eps[end] = append(b.n.eps[end], s)
			end = e
		}
	case partChoice:
		// A choice with no alternatives matches nothing: end is unreachable.
		if end, err = b.n.state(); err != nil {
			return
		}
		for _, c := range p.children {
			s, e, err := b.repeat(c)
			if err != nil {
				return 0, 0, err
			}
			b.n.eps[start] = append(b.n.eps[start], s)
			b.n.eps[e] = append(b.n.eps[e], end)
		}
	}
	return start, end, nil
}

// closure returns the sorted epsilon closure of states. seen must be all
// false on entry and is left so.
func (b *modelBuilder) closure(states []int32, seen []bool) []int32 {
	stack := slices.Clone(states)
	var out []int32
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		stack = append(stack, b.n.eps[s]...)
	}
	for _, s := range out {
		seen[s] = false
	}
	slices.Sort(out)
	return out
}

func setKey(states []int32) string {
	buf := make([]byte, 0, 4*len(states))
	for _, s := range states {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(s))
	}
	return string(buf)
}

// determinize runs the subset construction.
func (b *modelBuilder) determinize(start, final int32) error {
	m := b.m
	nsym := len(m.symbols)
	seen := make([]bool, len(b.n.sym))
	sets := [][]int32{b.closure([]int32{start}, seen)}
	ids := map[string]int{setKey(sets[0]): 0}
	work := len(sets[0])
	targets := make([][]int32, nsym)
	for d := 0; d < len(sets); d++ {
		set := sets[d]
		m.accept = append(m.accept, slices.Contains(set, final))
		owners := slices.Repeat([]int32{-1}, nsym)
		for sym := range targets {
			targets[sym] = targets[sym][:0]
		}
		for _, s := range set {
			sym := b.n.sym[s]
			if sym < 0 {
				continue
			}
			if owners[sym] >= 0 && owners[sym] != b.n.owner[s] {
				return fmt.Errorf("content model is ambiguous: element %q could match two different particles (Unique Particle Attribution)", m.symbols[sym].name.local)
			}
			owners[sym] = b.n.owner[s]
			targets[sym] = append(targets[sym], b.n.to[s])
		}
		row := make([]int32, nsym)
		for sym := range nsym {
			if len(targets[sym]) == 0 {
				row[sym] = -1
				continue
			}
			next := b.closure(targets[sym], seen)
			key := setKey(next)
			id, ok := ids[key]
			if !ok {
				work += len(next)
				if len(sets) >= maxStates || work > maxSubsetWork {
					return errTooLarge()
				}
				id = len(sets)
				ids[key] = id
				sets = append(sets, next)
			}
			row[sym] = int32(id)
		}
		m.trans = append(m.trans, row...)
		m.owner = append(m.owner, owners...)
	}
	return nil
}

// computeToAccept finds, by breadth-first search backwards from the
// accepting states, the first symbol of a shortest completion of each
// state; ties go to the symbol declared first.
func (m *contentModel) computeToAccept() {
	n, nsym := len(m.accept), len(m.symbols)
	rev := make([][]int32, n)
	for q := range n {
		for sym := range nsym {
			if t := m.next(q, sym); t >= 0 {
				rev[t] = append(rev[t], int32(q))
			}
		}
	}
	dist := make([]int, n)
	var queue []int32
	for q := range n {
		dist[q] = -1
		if m.accept[q] {
			dist[q] = 0
			queue = append(queue, int32(q))
		}
	}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, q := range rev[t] {
			if dist[q] < 0 {
				dist[q] = dist[t] + 1
				queue = append(queue, q)
			}
		}
	}
	m.toAccept = make([]int32, n)
	for q := range n {
		m.toAccept[q] = -1
		if dist[q] <= 0 {
			continue
		}
		for sym := range nsym {
			if t := m.next(q, sym); t >= 0 && dist[t] == dist[q]-1 {
				m.toAccept[q] = int32(sym)
				break
			}
		}
	}
}

// maxCount is the most times name can occur in content matching p, -1 for
// unbounded.
func maxCount(p *particle, name xmlName) int {
	if p == nil {
		return 0
	}
	inner := 0
	switch p.kind {
	case partElement:
		if p.elem.ns == name.ns && p.elem.name == name.local {
			inner = 1
		}
	case partSequence:
		for _, c := range p.children {
			n := maxCount(c, name)
			if n < 0 {
				inner = -1
				break
			}
			inner += n
		}
	case partChoice:
		for _, c := range p.children {
			n := maxCount(c, name)
			if n < 0 {
				inner = -1
				break
			}
			inner = max(inner, n)
		}
	}
	switch {
	case inner == 0 || p.max == 0:
		return 0
	case inner < 0 || p.max == unbounded:
		return -1
	case inner > maxStates || p.max > maxStates:
		// Beyond any automaton we would build; saturate rather than overflow.
		return -1
	}
	return inner * p.max
}
