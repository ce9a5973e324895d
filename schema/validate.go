package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// Validate checks an element tree (a document's root element, parsed with
// etree) against the global element declarations. It returns nil or a
// *Violation (the first violation in document order).
//
// Validating a valid document does not allocate (except for integers of
// more than 18 digits and values of enumerated base64Binary types);
// messages and paths are built only for the violation returned.
func (s *Schema) Validate(root *etree.Element) error {
	if root == nil {
		return &Violation{Kind: WrongRoot, Path: "/", Message: "the document has no root element"}
	}
	v := validator{root: root}
	d := s.globals[root.Tag]
	if d == nil {
		return v.fail(WrongRoot, root, root.Tag, fmt.Sprintf("root element %q is not declared by the schema; expected %s in %s",
			root.Tag, quoteList(s.globalNames, "or"), nsPhrase(s.targetNS)))
	}
	if ns := root.NamespaceURI(); ns != d.ns {
		return v.fail(WrongRoot, root, root.Tag, fmt.Sprintf("root element %q is in %s, but the schema expects %s",
			root.Tag, elementNS(root), nsPhrase(d.ns)))
	}
	if viol := v.element(root, d); viol != nil {
		return viol
	}
	return nil
}

type validator struct {
	root *etree.Element
}

func (v *validator) fail(kind ViolationKind, at *etree.Element, element, msg string) *Violation {
	return &Violation{Kind: kind, Path: v.path(at), Element: element, Message: msg}
}

// element validates e, already matched to declaration d, and its subtree.
func (v *validator) element(e *etree.Element, d *elementDecl) *Violation {
	for _, a := range e.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		return v.fail(UnexpectedAttribute, e, e.Tag, fmt.Sprintf("element %q must not have attribute %q", e.Tag, a.FullKey()))
	}
	if d.simple != nil {
		return v.simpleContent(e, d.simple)
	}
	return v.complexContent(e, d.complex)
}

// simpleContent validates the concatenated text of e (CDATA included;
// comments and processing instructions do not split the value).
func (v *validator) simpleContent(e *etree.Element, t *simpleType) *Violation {
	var text string
	var b *strings.Builder
	pieces := 0
	for _, tok := range e.Child {
		switch tok := tok.(type) {
		case *etree.CharData:
			switch pieces {
			case 0:
				text = tok.Data
			case 1:
				b = &strings.Builder{}
				b.WriteString(text)
				fallthrough
			default:
				b.WriteString(tok.Data)
			}
			pieces++
		case *etree.Element:
			return v.fail(UnexpectedContent, tok, tok.Tag, fmt.Sprintf("element %q has a simple type and cannot contain element %q", e.Tag, tok.Tag))
		}
	}
	if b != nil {
		text = b.String()
	}
	if msg := t.check(text); msg != "" {
		return v.fail(InvalidValue, e, e.Tag, fmt.Sprintf("element %q: %s", e.Tag, msg))
	}
	return nil
}

// complexContent runs e's children through the content model's automaton.
func (v *validator) complexContent(e *etree.Element, ct *complexType) *Violation {
	m := ct.model
	state := 0
	for i, tok := range e.Child {
		switch tok := tok.(type) {
		case *etree.CharData:
			if ct.empty {
				return v.fail(UnexpectedText, e, e.Tag, fmt.Sprintf("element %q must be empty, but contains the text %s", e.Tag, quoteValue(tok.Data)))
			}
			if strings.TrimFunc(tok.Data, isXMLSpace) != "" {
				return v.fail(UnexpectedText, e, e.Tag, fmt.Sprintf("element %q may contain only elements, but contains the text %s",
					e.Tag, quoteValue(strings.TrimFunc(tok.Data, isXMLSpace))))
			}
		case *etree.Element:
			sym, ok := m.index[xmlName{tok.NamespaceURI(), tok.Tag}]
			if !ok {
				return v.unknown(e, tok, m)
			}
			next := m.next(state, sym)
			if next < 0 {
				return v.misplaced(e, i, sym, state, m)
			}
			if viol := v.element(tok, m.symbols[sym].decl); viol != nil {
				return viol
			}
			state = next
		}
	}
	if !m.accept[state] {
		missing := m.toAccept[state]
		if missing < 0 {
			return v.fail(MissingElement, e, "", fmt.Sprintf("the content model of element %q cannot be satisfied", e.Tag))
		}
		name := m.symbols[missing].name.local
		return v.fail(MissingElement, e, name, fmt.Sprintf("element %q is missing required child element %q", e.Tag, name))
	}
	return nil
}

// unknown reports a child whose name the content model does not have.
func (v *validator) unknown(parent, child *etree.Element, m *contentModel) *Violation {
	if i, ok := m.byLocal[child.Tag]; ok {
		return v.fail(UnknownElement, child, child.Tag, fmt.Sprintf("element %q in %q is in %s, but the schema expects %s",
			child.Tag, parent.Tag, elementNS(child), nsPhrase(m.symbols[i].name.ns)))
	}
	names := make([]string, len(m.symbols))
	for i, s := range m.symbols {
		names[i] = s.name.local
	}
	allowed := "no child elements"
	if len(names) > 0 {
		allowed = quoteList(names, "or")
	}
	return v.fail(UnknownElement, child, child.Tag, fmt.Sprintf("element %q is not allowed in %q, which may contain %s", child.Tag, parent.Tag, allowed))
}

// misplaced classifies a known child the automaton cannot take in state:
// repeated if the model cannot hold that many of it, overall or in a row;
// missing if what must come first is absent from the rest of the content;
// else out of order.
func (v *validator) misplaced(parent *etree.Element, i, sym, state int, m *contentModel) *Violation {
	child := parent.Child[i].(*etree.Element)
	name := m.symbols[sym].name
	if limit := m.maxCount[sym]; limit >= 0 && countNamed(parent.Child[:i], name) >= limit {
		return v.fail(RepeatedElement, child, name.local, fmt.Sprintf("element %q occurs more often in %q than allowed (at most %d)",
			name.local, parent.Tag, limit))
	}
	if limit, run := m.runBefore(parent.Child[:i], sym); limit >= 0 && run >= limit {
		return v.fail(RepeatedElement, child, name.local, fmt.Sprintf("element %q occurs more often in a row in %q than allowed (at most %d)",
			name.local, parent.Tag, limit))
	}
	if first := m.firstOnPathTo(state, sym); first >= 0 {
		need := m.symbols[first].name
		if countNamed(parent.Child[i+1:], need) == 0 {
			return v.fail(MissingElement, parent, need.local, fmt.Sprintf("element %q is missing required child element %q before %q",
				parent.Tag, need.local, name.local))
		}
	}
	var expected []string
	for s := range m.symbols {
		if m.next(state, s) >= 0 {
			expected = append(expected, m.symbols[s].name.local)
		}
	}
	want := "no further child elements"
	if len(expected) > 0 {
		want = quoteList(expected, "or")
		if m.accept[state] {
			want += fmt.Sprintf(" or the end of %q", parent.Tag)
		}
	}
	return v.fail(UnexpectedElement, child, name.local, fmt.Sprintf("element %q is out of order in %q; expected %s", name.local, parent.Tag, want))
}

// runBefore replays the (valid) children before a failure. If they end in
// a run of sym, it returns the maxOccurs of the particle that matched the
// last of them (-1 if unbounded or there is no such run) and the length of
// the run.
func (m *contentModel) runBefore(toks []etree.Token, sym int) (limit, run int) {
	state, last := 0, -1
	limit = -1
	for _, tok := range toks {
		el, ok := tok.(*etree.Element)
		if !ok {
			continue
		}
		s, ok := m.index[xmlName{el.NamespaceURI(), el.Tag}]
		if !ok {
			return -1, 0
		}
		t := state*len(m.symbols) + s
		if s == sym && last == sym {
			run++
		} else {
			run = 1
		}
		last = s
		limit = m.ownerMax[m.owner[t]]
		state = int(m.trans[t])
	}
	if last != sym {
		return -1, 0
	}
	return limit, run
}

// firstOnPathTo returns the first symbol of a shortest path from state to
// a state that accepts sym, or -1. Only used on the error path.
func (m *contentModel) firstOnPathTo(state, sym int) int {
	n := len(m.accept)
	first := make([]int, n)
	for q := range first {
		first[q] = -2 // unvisited
	}
	first[state] = -1
	queue := []int{state}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		for s := range m.symbols {
			t := m.next(q, s)
			if t < 0 || first[t] != -2 {
				continue
			}
			first[t] = first[q]
			if q == state {
				first[t] = s
			}
			if m.next(t, sym) >= 0 {
				return first[t]
			}
			queue = append(queue, t)
		}
	}
	return -1
}

func countNamed(toks []etree.Token, name xmlName) int {
	n := 0
	for _, tok := range toks {
		if el, ok := tok.(*etree.Element); ok && el.Tag == name.local && el.NamespaceURI() == name.ns {
			n++
		}
	}
	return n
}

// path renders e's location relative to the validation root.
func (v *validator) path(e *etree.Element) string {
	var segs []string
	for x := e; x != nil; x = x.Parent() {
		seg := x.Tag
		if p := x.Parent(); p != nil && x != v.root {
			pos, total := 0, 0
			for _, sib := range p.ChildElements() {
				if sib.Tag == x.Tag && sib.NamespaceURI() == x.NamespaceURI() {
					total++
					if sib == x {
						pos = total
					}
				}
			}
			if total > 1 {
				seg += "[" + strconv.Itoa(pos) + "]"
			}
		}
		segs = append(segs, seg)
		if x == v.root {
			break
		}
	}
	slices.Reverse(segs)
	return "/" + strings.Join(segs, "/")
}

// elementNS describes the namespace e is in. etree resolves an undeclared
// prefix to no namespace, which would make the message misleading.
func elementNS(e *etree.Element) string {
	ns := e.NamespaceURI()
	if ns == "" && e.Space != "" && e.Space != "xmlns" {
		return fmt.Sprintf("no namespace (its prefix %q is not declared)", e.Space)
	}
	return nsPhrase(ns)
}

func nsPhrase(ns string) string {
	if ns == "" {
		return "no namespace"
	}
	return fmt.Sprintf("namespace %q", ns)
}

// quoteList renders ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteList(names []string, conj string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
