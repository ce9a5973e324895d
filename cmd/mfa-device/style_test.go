package main

import (
	"errors"
	"image/color"
	"testing"
)

func TestChooseStyle(t *testing.T) {
	t.Parallel()
	white, black := color.RGBA{255, 255, 255, 255}, color.RGBA{0, 0, 0, 255}
	solarizedLight := color.RGBA{0xfd, 0xf6, 0xe3, 255}
	answers := func(c color.Color) func() (color.Color, error) {
		return func() (color.Color, error) { return c, nil }
	}
	silent := func() (color.Color, error) { return nil, errors.New("no answer") }
	for _, c := range []struct {
		name, requested string
		tty             bool
		bg              func() (color.Color, error)
		colorFGBG       string
		want            string
	}{
		{"chosen", "light", true, answers(black), "", "light"},
		{"not a terminal", "auto", false, answers(white), "", "notty"},
		{"white terminal", "auto", true, answers(white), "", "light"},
		{"solarized light", "auto", true, answers(solarizedLight), "", "light"},
		{"black terminal", "auto", true, answers(black), "15;0", "dark"},
		{"silent, COLORFGBG light", "auto", true, silent, "0;15", "light"},
		{"silent, COLORFGBG white", "auto", true, silent, "0;default;7", "light"},
		{"silent, COLORFGBG dark", "auto", true, silent, "15;0", "dark"},
		{"silent, COLORFGBG garbage", "auto", true, silent, "x", "dark"},
		{"silent, nothing", "auto", true, silent, "", "dark"},
	} {
		env := func(k string) string {
			if k == "COLORFGBG" {
				return c.colorFGBG
			}
			return ""
		}
		if got := chooseStyle(c.requested, c.tty, c.bg, env); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
