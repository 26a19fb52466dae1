// OPS Trigger console: keyboard use, the content toggle, confirmations and live updates.
// Loaded from a file (the page's CSP allows no inline script); htmx does the partial swaps.
(function () {
  "use strict";

  var body = document.body;
  var prefix = "/console";

  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(t.tagName));
  }

  // Forms that ask first (revoking a token).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);

  // htmx requests carry the session's CSRF token too.
  document.addEventListener("htmx:configRequest", function (event) {
    if (body.dataset.csrf) { event.detail.headers["X-CSRF-Token"] = body.dataset.csrf; }
  });

  // Content: rendered Markdown or plain text (the choice is remembered).
  function showContent(section, view) {
    section.querySelectorAll("[data-view]").forEach(function (el) {
      el.hidden = el.dataset.view !== view;
    });
    section.querySelectorAll("[data-show]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.show === view));
    });
  }
  document.querySelectorAll("[data-toggle]").forEach(function (section) {
    var saved = null;
    try { saved = window.localStorage.getItem("ops.content.view"); } catch (e) { saved = null; }
    if (saved === "plain" || saved === "rendered") { showContent(section, saved); }
    section.querySelectorAll("[data-show]").forEach(function (button) {
      button.addEventListener("click", function () {
        showContent(section, button.dataset.show);
        try { window.localStorage.setItem("ops.content.view", button.dataset.show); } catch (e) { /* private mode */ }
      });
    });
  });

  // Lists: j / k move between rows, Enter opens the row's link.
  var current = -1;
  function rows() { return document.querySelectorAll("[data-list] [data-item]"); }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    if (current >= 0 && all[current]) { all[current].classList.remove("current"); }
    current = Math.max(0, Math.min(all.length - 1, current + step));
    var row = all[current];
    row.classList.add("current");
    var link = row.querySelector("a");
    if (link) { link.focus(); } else { row.scrollIntoView({ block: "nearest" }); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) { return; }
    if (event.key === "j") { move(1); event.preventDefault(); }
    else if (event.key === "k") { move(-1); event.preventDefault(); }
    else if (event.key === "a") {
      var form = document.getElementById("approve-form");
      if (form && window.confirm(form.dataset.keyConfirm || "Approve?")) {
        event.preventDefault();
        form.requestSubmit();
      }
    }
  });

  // Live updates: an EventSource on /console/events (the session cookie authenticates it).
  document.querySelectorAll("[data-live-types]").forEach(function (el) {
    var params = new URLSearchParams({ types: el.dataset.liveTypes });
    if (el.dataset.liveAfter) { params.set("after", el.dataset.liveAfter); }
    if (el.dataset.liveSubject) { params.set("subject", el.dataset.liveSubject); }
    var source = new EventSource(prefix + "/events?" + params.toString());
    var timer = null;
    function refresh(done) {
      if (!el.dataset.liveRefresh || !window.htmx) { return; }
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        window.htmx.ajax("GET", el.dataset.liveRefresh, { target: el, swap: "innerHTML" }).then(done);
      }, 30);
    }
    function onEvent(event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { return; }
      var match = el.dataset.liveMatch;
      if (match && event.type.indexOf("draft.") === 0 && data.subject !== match) { return; }
      if (el.dataset.liveNotice) {
        var notice = document.getElementById(el.dataset.liveNotice);
        if (notice) { notice.hidden = false; }
      }
      refresh(function () {
        if (event.type === "run.finished") { source.close(); }
      });
    }
    el.dataset.liveTypes.split(",").forEach(function (type) {
      source.addEventListener(type, onEvent);
    });
    el.liveSource = source;
  });

  // Sign-in page: a session may exist although this navigation came without its cookie
  // (SameSite=Strict holds it back on a link from another site): ask, and move on if so.
  if (body.dataset.page === "sign-in") {
    var box = document.querySelector("[data-whoami]");
    if (box) {
      window.fetch(box.dataset.whoami, { credentials: "same-origin" }).then(function (r) {
        return r.json();
      }).then(function (answer) {
        if (answer.signed_in) { window.location.replace(box.dataset.next || prefix); }
      }).catch(function () { /* stay on the form */ });
    }
  }
})();
