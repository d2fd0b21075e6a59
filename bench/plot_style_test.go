package bench

import (
	"fmt"
	"image/color"
	"testing"
)

func paletteOf(names ...string) palette {
	var results []*Result
	for _, n := range names {
		results = append(results, &Result{Row: Row{Name: n}})
	}
	return newPalette(results)
}

// Every row must be told apart by colour, marker or dashes together, for the twelve rows of a
// default run and a handful of a user's own.
func TestPaletteDistinguishes(t *testing.T) {
	names := append([]string(nil), syntheticRows...)
	for i := 0; i < 8; i++ {
		names = append(names, fmt.Sprintf("user-server-%d", i))
	}
	p := paletteOf(names...)
	seen := map[string]string{}
	for _, n := range names {
		s := p.of(n)
		key := fmt.Sprintf("%v %T %v", s.color, s.glyph, s.dashes)
		if other, dup := seen[key]; dup {
			t.Errorf("%s and %s are drawn alike: %s", n, other, key)
		}
		seen[key] = n
	}
	if ref := p.of(CRefName); ref.color != (color.RGBA{A: 255}) || len(ref.dashes) == 0 {
		t.Errorf("the C reference is %v dashes %v, want black and dashed", ref.color, ref.dashes)
	}
}

// A row keeps its style whichever other rows a run has and in whatever order, so figures of two
// runs compare by eye.
func TestPaletteStable(t *testing.T) {
	all := paletteOf(syntheticRows...)
	few := paletteOf("uring", "my-library-with-a-long-name/v2", "stdnet")
	for _, n := range []string{"uring", "stdnet", "my-library-with-a-long-name/v2"} {
		if fmt.Sprint(all.of(n)) != fmt.Sprint(few.of(n)) {
			t.Errorf("%s is drawn %v in one run and %v in another", n, all.of(n), few.of(n))
		}
	}
	reversed := append([]string(nil), syntheticRows...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	back := paletteOf(reversed...)
	for _, n := range syntheticRows {
		if fmt.Sprint(all.of(n)) != fmt.Sprint(back.of(n)) {
			t.Errorf("%s changes style with the row order", n)
		}
	}
}

// More user rows than there are styles must still give every row one, not loop for ever.
func TestPaletteManyRows(t *testing.T) {
	var names []string
	for i := 0; i < 60; i++ {
		names = append(names, fmt.Sprintf("row-%d", i))
	}
	p := paletteOf(names...)
	if len(p) != len(names) {
		t.Errorf("%d styles for %d rows", len(p), len(names))
	}
}
