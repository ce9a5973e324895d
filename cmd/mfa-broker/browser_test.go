package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/legalmfa/mfa/notify"
	"github.com/legalmfa/mfa/notify/notifytest"
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
// would, and reads the result page; then tries to inject markup through a
// field the error page echoes.
func TestFormInBrowser(t *testing.T) {
	t.Parallel()
	tb := startBroker(t)
	d := tb.person("19791231-1234", "SE", notifytest.Always(notify.Approve))
	ctx := browser(t)

	// Selectors are typed chromedp.CSS: a plain string is a DOM text search,
	// which also matches the rules in the page's <style> and never shows.
	err := chromedp.Do(ctx,
		chromedp.Navigate(tb.url("/MFA")),
		chromedp.SendKeys(chromedp.CSS("#PNR"), "19791231-1234"),
		chromedp.SendKeys(chromedp.CSS("#COUNTRY"), "SE"),
		chromedp.SetValue(chromedp.CSS("#Timeout"), "30"),
		chromedp.SendKeys(chromedp.CSS("#Reason"), "Testing the **form**"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".outcome")),
	)
	if err != nil {
		t.Fatal(err)
	}
	title := browse(t, ctx, chromedp.Text(chromedp.CSS("h1")))
	code := browse(t, ctx, chromedp.Text(chromedp.CSS("dd.mono")))
	if title != "Approved" || code != "approved" {
		t.Fatalf("result page says %q / %q", title, code)
	}
	if p := d.NextPrompt(); p.Push.Reason != "Testing the **form**" || p.Push.Requester.RemoteIP == "" {
		t.Fatalf("device was shown %+v", p.Push)
	}

	const injection = `<img src=x onerror="document.title='pwned'">`
	err = chromedp.Do(ctx,
		chromedp.Navigate(tb.url("/MFA")),
		// Switch off the form's own checks so the broker sees the bad value.
		chromedp.Evaluate[chromedp.Void](`document.querySelector('form').noValidate = true;
			document.getElementById('COUNTRY').removeAttribute('maxlength');
			document.getElementById('COUNTRY').removeAttribute('pattern');`),
		chromedp.SendKeys(chromedp.CSS("#PNR"), "1"),
		chromedp.SendKeys(chromedp.CSS("#COUNTRY"), injection),
		chromedp.SendKeys(chromedp.CSS("#Reason"), "r"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".outcome")),
		chromedp.Sleep(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	page := browse(t, ctx, chromedp.Text(chromedp.CSS("body")))
	if docTitle := browse(t, ctx, chromedp.Title()); strings.Contains(docTitle, "pwned") {
		t.Fatal("markup injected through COUNTRY ran in the result page")
	}
	if !strings.Contains(page, "invalid-field") || !strings.Contains(page, "<img") {
		t.Fatalf("error page does not show the escaped input:\n%s", page)
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
