// While the browser waits for the answer to the posted form, it keeps this
// page on screen: say that the phone is being asked, and count down to
// the request's expiry. The answer page replaces this one when it comes.
(function () {
  var form = document.getElementById("mfa");
  form.addEventListener("submit", function () {
    var left = parseInt(document.getElementById("Timeout").value, 10) || 0;
    var shown = document.getElementById("countdown");
    var tick = function () {
      var m = Math.floor(left / 60), s = left % 60;
      shown.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      left = Math.max(0, left - 1);
    };
    tick();
    setInterval(tick, 1000);
    form.querySelector("button").disabled = true;
    document.getElementById("waiting").hidden = false;
  });
})();
