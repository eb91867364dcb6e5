/// The stylesheet and script, served from the binary (`/static/app.css`,
/// `/static/app.js`): no build step, no CDN, nothing fetched from elsewhere.
enum Assets {
    static let css = """
        :root { --fg: #1d2125; --muted: #5f6b76; --line: #d9dee3; --bg: #fff; --alt: #f5f7f9; --ok: #2f855a; --bad: #c53030;
                --warn: #b7791f; --link: #1f5fa8; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #e6e9ec; --muted: #9aa5b1; --line: #39424c; --bg: #15191d; --alt: #1d2329; --link: #79b0f0; }
        }
        body { margin: 0; background: var(--bg); }
        header { display: flex; gap: 1.2em; align-items: center; padding: .6em 1.2em; border-bottom: 1px solid var(--line); background: var(--alt); }
        header .brand { font-weight: 700; }
        header nav a { margin-right: 1em; }
        header nav a.active { font-weight: 700; text-decoration: none; }
        header .db { color: var(--muted); margin-left: auto; font-family: ui-monospace, monospace; font-size: 12px; }
        main { padding: 1em 1.2em 3em; max-width: 1400px; }
        h1 { font-size: 1.4em; margin: .2em 0 .6em; }
        h2 { font-size: 1.1em; margin: 1.4em 0 .5em; }
        a { color: var(--link); }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { color: var(--muted); font-weight: 600; font-size: 12px; }
        .n { text-align: right; font-variant-numeric: tabular-nums; }
        td.error, pre.error { color: var(--bad); }
        pre { margin: 0; white-space: pre-wrap; word-break: break-word; font: 12px/1.4 ui-monospace, monospace; }
        pre.payload, pre.result { background: var(--alt); padding: .8em; border: 1px solid var(--line); max-height: 40em; overflow: auto; }
        td.payload code { font-size: 12px; color: var(--muted); }
        .state { padding: .05em .45em; border-radius: 3px; font-size: 12px; background: var(--alt); border: 1px solid var(--line); }
        .state.succeeded { color: var(--ok); } .state.failed { color: var(--bad); } .state.running { color: var(--link); }
        .state.cancelled { color: var(--muted); } .state.queued { color: var(--warn); }
        .outcome.failed, .outcome.crashed, .outcome.timed-out { color: var(--bad); }
        .paused, .dead { color: var(--bad); font-weight: 600; }
        tr.dead td { opacity: .75; }
        tr.late td { background: var(--alt); }
        .asof { color: var(--muted); font-size: 12px; }
        progress { width: 8em; vertical-align: middle; }
        .idle, .empty { color: var(--muted); }
        .notice { background: var(--alt); border-left: 3px solid var(--link); padding: .4em .8em; }
        .tabs { display: flex; gap: .3em; margin-bottom: .8em; flex-wrap: wrap; }
        .tabs a { padding: .3em .8em; border: 1px solid var(--line); border-radius: 4px; text-decoration: none; }
        .tabs a.active { background: var(--alt); font-weight: 600; }
        .tabs .count { color: var(--muted); }
        form.filters { display: flex; gap: .6em; flex-wrap: wrap; align-items: center; margin-bottom: 1em; }
        form.filters input { width: 8em; }
        form.inline { display: inline; }
        form.login { max-width: 28em; display: grid; gap: .8em; }
        button, a.button { font: inherit; padding: .2em .7em; border: 1px solid var(--line); border-radius: 4px; background: var(--bg);
                           color: var(--fg); cursor: pointer; text-decoration: none; }
        button.danger, a.button.danger { color: var(--bad); }
        .live { margin-left: .5em; }
        .live[aria-pressed=false] { color: var(--warn); }
        .live.off { color: var(--muted); }
        svg.chart { width: 100%; max-width: 720px; height: auto; display: block; }
        svg.chart rect.ok { fill: var(--ok); } svg.chart rect.bad { fill: var(--bad); }
        svg.chart line.axis { stroke: var(--line); } svg.chart text { fill: var(--muted); font-size: 10px; }
        .legend .ok { color: var(--ok); } .legend .bad { color: var(--bad); }
        details.cli { margin-top: 2em; color: var(--muted); }
        details.cli pre { background: var(--alt); padding: .6em; border: 1px solid var(--line); }
        table.fields th { width: 9em; color: var(--muted); font-weight: 500; }
        """

    static let js = """
        // Live updates: the server sends "change" on /events when the database
        // changed; the page then fetches itself again and swaps its <main>. Held
        // back while paused, while rows are selected or a field has focus.
        (function () {
          "use strict";
          var button = document.getElementById("live");
          var paused = sessionStorage.getItem("taskq-paused") === "1";
          var pending = false, busy = false;

          function show() {
            if (!button) return;
            button.setAttribute("aria-pressed", paused ? "false" : "true");
            button.textContent = paused ? (pending ? "paused (changes waiting)" : "paused") : "live";
          }
          function holding() {
            if (paused) return true;
            if (document.querySelector("main input[type=checkbox]:checked")) return true;
            var a = document.activeElement;
            return !!(a && a.closest && a.closest("main") && (a.tagName === "INPUT" || a.tagName === "SELECT"));
          }
          function refresh() {
            if (busy) { pending = true; return; }
            if (holding()) { pending = true; show(); return; }
            pending = false; busy = true;
            fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
              .then(function (r) { return r.ok ? r.text() : null; })
              .then(function (text) {
                if (text === null) return;
                var doc = new DOMParser().parseFromString(text, "text/html");
                var next = doc.getElementById("main"), main = document.getElementById("main");
                if (next && main) {
                  var open = main.querySelector("details.cli[open]");
                  main.replaceChildren.apply(main, Array.prototype.slice.call(next.childNodes).map(function (n) { return document.importNode(n, true); }));
                  if (open) { var d = main.querySelector("details.cli"); if (d) d.open = true; }
                  document.body.dataset.version = String((+document.body.dataset.version || 0) + 1);
                }
              })
              .catch(function () {})
              .then(function () { busy = false; if (pending && !holding()) refresh(); });
          }
          if (button) {
            button.addEventListener("click", function () {
              paused = !paused;
              sessionStorage.setItem("taskq-paused", paused ? "1" : "0");
              show();
              if (!paused && pending) refresh();
            });
            show();
            if (window.EventSource) {
              var events = new EventSource("/events");
              events.addEventListener("change", refresh);
              events.addEventListener("open", function () { button.classList.remove("off"); });
              events.addEventListener("error", function () { button.classList.add("off"); });
            }
          }
          document.addEventListener("change", function (e) {
            var t = e.target;
            if (t && t.id === "select-all") {
              document.querySelectorAll("main input[name=id]").forEach(function (c) { c.checked = t.checked; });
            }
            if (!document.querySelector("main input[type=checkbox]:checked") && pending) refresh();
          });
          document.addEventListener("focusout", function () { setTimeout(function () { if (pending && !holding()) refresh(); }, 0); });
          // A note after an action is shown once: reloads do not repeat it.
          if (location.search.indexOf("done=") >= 0 && window.URLSearchParams) {
            var p = new URLSearchParams(location.search);
            p.delete("done");
            var q = p.toString();
            history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
          }
        })();
        """
}
