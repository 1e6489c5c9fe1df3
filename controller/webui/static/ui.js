// hanode web cluster manager: refreshes a page's live part (#live, rendered by the server)
// every data-poll milliseconds from data-src; a signed-out session goes back to sign-in.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  var src = live.getAttribute("data-src");
  var every = parseInt(live.getAttribute("data-poll"), 10) || 2000;
  function tick() {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, every * 2);
    fetch(src, { credentials: "same-origin", cache: "no-store", signal: ctl.signal })
      .then(function (r) {
        if (r.status === 401) { location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search)); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        live.innerHTML = html;
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); })
      .finally(function () { clearTimeout(timer); setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
