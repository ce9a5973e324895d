package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/legalmfa/mfa/internal/poll"
	"github.com/legalmfa/mfa/notify"
)

// browser starts headless Chromium for one test. Without Chromium the test
// is skipped, except under CI=true, where CI installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium on PATH; CI must install Debian's chromium package")
		}
		t.Skip("no Chromium on PATH (apt-get install chromium to run browser tests)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// TestFormInBrowser fills in the test form in a real browser, as a tester
// would: the page says the phone is being asked and counts down while the
// person decides, then shows the answer with what was asked. A signed
// request goes through the form too, and markup typed into a field the
// answer page shows stays text.
func TestFormInBrowser(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	release := make(chan struct{})
	var once sync.Once
	releaseOnce := func() { once.Do(func() { close(release) }) }
	d := tb.person("19791231-1234", "SE", func(notify.Prompt) (notify.Decision, bool) {
		<-release // the person reads for a while
		return notify.Approve, true
	})
	t.Cleanup(releaseOnce) // runs before the device stops, whatever happens
	ctx := browser(t)

	// Selectors are typed chromedp.CSS: a plain string is a DOM text search,
	// which also matches the rules in the page's <style> and never shows.
	err := chromedp.Do(ctx,
		chromedp.Navigate(tb.url("/MFA")),
		chromedp.SendKeys(chromedp.CSS("#PNR"), "19791231-1234"),
		chromedp.SendKeys(chromedp.CSS("#COUNTRY"), "SE"),
		chromedp.SetValue(chromedp.CSS("#Timeout"), "45"),
		chromedp.SendKeys(chromedp.CSS("#Reason"), "Testing the **form**"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	// While the form's answer is on its way, chromedp's DOM queries wait
	// for the next page; a script evaluated in this one does not.
	var waiting, countdown string
	poll.Until(t, "the page showing that it waits for the phone", func() bool {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[String(document.getElementById("waiting").hidden),
			document.getElementById("waiting").innerText, document.getElementById("countdown").innerText]`))
		if err != nil || len(state) != 3 || state[0] != "false" {
			return false
		}
		waiting, countdown = state[1], state[2]
		return true
	})
	if !strings.Contains(waiting, "Check the phone") || !regexp.MustCompile(`^0:4[0-5]$`).MatchString(countdown) {
		t.Fatalf("while the phone is asked the page says %q, counting %q", waiting, countdown)
	}
	releaseOnce()
	err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".outcome")))
	if err != nil {
		t.Fatal(err)
	}
	title := browse(t, ctx, chromedp.Text(chromedp.CSS("h1")))
	code := browse(t, ctx, chromedp.Text(chromedp.CSS("dd.mono")))
	if title != "Approved" || code != "approved" {
		t.Fatalf("result page says %q / %q", title, code)
	}
	asked := browse(t, ctx, chromedp.Text(chromedp.CSS("dl.asked")))
	if !strings.Contains(asked, "Testing the **form**") || !strings.Contains(asked, "UTC") || strings.Contains(browse(t, ctx, chromedp.Text(chromedp.CSS("body"))), "19791231-1234") {
		t.Fatalf("the result page does not say what was asked and when, or shows the PNR:\n%s", asked)
	}
	if p := d.NextPrompt(); p.Push.Reason != "Testing the **form**" || p.Push.Requester.RemoteIP == "" {
		t.Fatalf("device was shown %+v", p.Push)
	}

	// A signed request, its four fields filled in as mfa-device sign
	// --format form prints them.
	rpID, rpKey := tb.requester()
	m := mfaBody{PNR: "19791231-1234", COUNTRY: "SE", Timeout: 30, Reason: "Signed **in the form**", LegalId: rpID}
	sign(rpKey, &m)
	err = chromedp.Do(ctx,
		chromedp.Navigate(tb.url("/MFA")),
		chromedp.SendKeys(chromedp.CSS("#PNR"), m.PNR),
		chromedp.SendKeys(chromedp.CSS("#COUNTRY"), m.COUNTRY),
		chromedp.SetValue(chromedp.CSS("#Timeout"), "30"),
		chromedp.SendKeys(chromedp.CSS("#Reason"), m.Reason),
		chromedp.SendKeys(chromedp.CSS("#LegalId"), m.LegalId),
		chromedp.SendKeys(chromedp.CSS("#Signature"), m.Signature),
		chromedp.SendKeys(chromedp.CSS("#Issued"), m.Issued),
		chromedp.SendKeys(chromedp.CSS("#Nonce"), m.Nonce),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".outcome")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if title := browse(t, ctx, chromedp.Text(chromedp.CSS("h1"))); title != "Approved" {
		t.Fatalf("signed request from the form: %q:\n%s", title, browse(t, ctx, chromedp.Text(chromedp.CSS("body"))))
	}
	if r := d.NextPrompt().Push.Requester; !r.Verified || r.LegalID != rpID {
		t.Fatalf("the device was shown requester %+v, want %s verified", r, rpID)
	}

	const injection = `\<img src=x onerror="document.title='pwned'">`
	err = chromedp.Do(ctx,
		chromedp.Navigate(tb.url("/MFA")),
		chromedp.SendKeys(chromedp.CSS("#PNR"), "19000101-0000"),
		chromedp.SendKeys(chromedp.CSS("#COUNTRY"), "SE"),
		chromedp.SendKeys(chromedp.CSS("#Reason"), injection),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".outcome")),
		chromedp.Sleep(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	page := browse(t, ctx, chromedp.Text(chromedp.CSS("body")))
	if docTitle := browse(t, ctx, chromedp.Title()); strings.Contains(docTitle, "pwned") {
		t.Fatal("markup injected through the Reason ran in the result page")
	}
	if !strings.Contains(page, "unknown-person") || !strings.Contains(page, injection) {
		t.Fatalf("the answer page does not show the Reason asked as text:\n%s", page)
	}
}

func browse[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
