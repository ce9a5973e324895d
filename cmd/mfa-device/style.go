package main

import (
	"image/color"
	"os"
	"strconv"
	"strings"

	"charm.land/lipgloss/v2"
)

// Styles --style chooses by itself.
const (
	styleAuto  = "auto"
	styleDark  = "dark"
	styleLight = "light"
	styleNoTTY = "notty"
)

// chooseStyle resolves --style auto: no colours unless the output is a
// terminal; on one, the style that reads on its background. background
// asks the terminal for its colour (OSC 11); where it cannot tell,
// COLORFGBG ("foreground;background", set by rxvt, Konsole and others)
// may; failing both, dark, the common case.
func chooseStyle(requested string, outTTY bool, background func() (color.Color, error), getenv func(string) string) string {
	if requested != styleAuto {
		return requested
	}
	if !outTTY {
		return styleNoTTY
	}
	if bg, err := background(); err == nil && bg != nil {
		if isLight(bg) {
			return styleLight
		}
		return styleDark
	}
	if light, ok := colorFGBGLight(getenv("COLORFGBG")); ok && light {
		return styleLight
	}
	return styleDark
}

// isLight reports whether a background colour is light: its relative
// luminance (ITU-R BT.709) is over half.
func isLight(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	lum := 0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)
	return lum/0xffff > 0.5
}

// colorFGBGLight reads COLORFGBG's background, an ANSI colour index: 7
// (white) and 9 to 15 (the bright ones but for 8, grey) are light.
func colorFGBGLight(v string) (light, ok bool) {
	if v == "" {
		return false, false
	}
	fields := strings.Split(v, ";")
	n, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil || n < 0 || n > 15 {
		return false, false
	}
	return n == 7 || n >= 9, true
}

// terminalBackground asks the terminal on in and out for its background
// colour; both must be terminals.
func terminalBackground(in, out any) func() (color.Color, error) {
	return func() (color.Color, error) {
		i, ok1 := in.(*os.File)
		o, ok2 := out.(*os.File)
		if !ok1 || !ok2 {
			return nil, os.ErrInvalid
		}
		return lipgloss.BackgroundColor(i, o)
	}
}
