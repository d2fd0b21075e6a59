package bench

import (
	"hash/fnv"
	"image/color"
	"sort"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// rowStyle is how one row is drawn in every figure: the same colour, marker and dashes in the
// throughput, cost, latency and knee plots, so a reader who found "epoll" once finds it again.
type rowStyle struct {
	color  color.RGBA
	glyph  draw.GlyphDrawer
	dashes []vg.Length
	width  vg.Length
}

// Colours are the Tableau 10 palette, chosen for telling ten categories apart on screen and
// paper; the second ten are darker relatives for rows beyond the defaults. Colour and marker
// together tell apart more rows than either alone: slot i gets colour i%len(colours) and marker
// i%len(glyphs), which pair differently for the first 40 slots.
var (
	colours = []color.RGBA{
		rgb(0x1f77b4), rgb(0xd62728), rgb(0xff7f0e), rgb(0x9467bd), rgb(0x2ca02c),
		rgb(0x17becf), rgb(0x8c564b), rgb(0xbcbd22), rgb(0xe377c2), rgb(0x7f7f7f),
		rgb(0x393b79), rgb(0x637939), rgb(0x8c6d31), rgb(0x843c39), rgb(0x7b4173),
		rgb(0x3182bd), rgb(0xe6550d), rgb(0x31a354), rgb(0x756bb1), rgb(0x636363),
	}
	glyphs = []draw.GlyphDrawer{
		draw.CircleGlyph{}, draw.BoxGlyph{}, draw.TriangleGlyph{}, draw.PyramidGlyph{},
		draw.RingGlyph{}, draw.SquareGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{},
	}
	// userDashes marks rows that are not among the defaults (a -server row), so that they stand
	// out from the models even where their colour is a relative of a model's.
	userDashes = []vg.Length{vg.Points(7), vg.Points(2), vg.Points(2), vg.Points(2)}
	refDashes  = []vg.Length{vg.Points(6), vg.Points(3)}
)

// knownSlots fixes the slot of every default row by name, so its colour does not depend on which
// rows a run selected (-models) or in which order.
var knownSlots = map[string]int{
	"stdnet": 0, "epoll": 1, "async": 2, "uring": 3, "select": 4, "nonblocking": 5,
	"blocking": 6, "blocking/128": 7, "process": 8, "prefork/128": 9,
}

func rgb(v uint32) color.RGBA {
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 255}
}

// palette maps row names to styles.
type palette map[string]rowStyle

// newPalette gives every row of the results its style. Default rows keep their fixed slots;
// other rows (a user's -server rows) are placed by a hash of their name into the free slots,
// moving to the next free one on a collision in name order, so the same set of rows always gets
// the same styles.
func newPalette(results []*Result) palette {
	p := palette{}
	used := map[int]bool{}
	var others []string
	seen := map[string]bool{}
	for _, r := range results {
		name := r.Row.Name
		if seen[name] {
			continue
		}
		seen[name] = true
		switch slot, ok := knownSlots[name]; {
		case name == CRefName:
			p[name] = rowStyle{color: color.RGBA{A: 255}, glyph: draw.CircleGlyph{}, dashes: refDashes, width: vg.Points(2.2)}
		case ok:
			p[name] = slotStyle(slot)
			used[slot] = true
		default:
			others = append(others, name)
		}
	}
	sort.Strings(others)
	// Slots past the defaults first: they carry the darker colours, less easily taken for a model.
	const userSlots = 40
	for _, name := range others {
		h := fnv.New32a()
		h.Write([]byte(name))
		free := userSlots - len(knownSlots)
		slot := len(knownSlots) + int(h.Sum32()%uint32(free))
		// With more rows than free slots, styles repeat rather than the probe looping forever.
		for probes := 0; used[slot] && probes < free; probes++ {
			slot = len(knownSlots) + (slot+1-len(knownSlots))%free
		}
		used[slot] = true
		s := slotStyle(slot)
		s.dashes = userDashes
		p[name] = s
	}
	return p
}

func slotStyle(slot int) rowStyle {
	return rowStyle{color: colours[slot%len(colours)], glyph: glyphs[slot%len(glyphs)], width: vg.Points(1.6)}
}

// of returns a row's style; a row the palette was not built with is drawn grey rather than not
// at all.
func (p palette) of(name string) rowStyle {
	if s, ok := p[name]; ok {
		return s
	}
	return rowStyle{color: rgb(0x999999), glyph: draw.CircleGlyph{}, width: vg.Points(1)}
}

func (s rowStyle) line() draw.LineStyle {
	return draw.LineStyle{Color: s.color, Width: s.width, Dashes: s.dashes}
}

func (s rowStyle) marker() draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.color, Radius: vg.Points(3), Shape: s.glyph}
}

// band is the colour of the row's interval: its own colour, translucent, so overlapping bands of
// close models stay readable and the lines on top stay sharp.
func (s rowStyle) band() color.Color {
	c := s.color
	const alpha = 33 // of 255: 13 %, so three overlapping bands still let the grid show
	return color.NRGBA{R: c.R, G: c.G, B: c.B, A: alpha}
}
