// live.js: refreshes the parts of a page that change on their own (the
// gateway's dashboard, the shop's order page).
//
// An element with an `id` and `data-live="SECONDS"` is refreshed every that
// many seconds: the page's own URL is fetched again and the element takes the
// content of the element with the same id in the answer, when it changed. An
// answer whose element has no `data-live` any more (nothing left pending) is
// shown once more and that element is left alone from then on.
//
// - One fetch serves every element due at the same time.
// - Nothing is fetched while the tab is hidden, nor for an element holding
//   the focus in one of its forms (what is typed there stays).
// - A failed fetch or an answer other than 200 backs off (doubling, up to a
//   minute) and says "reconnecting…" in a corner until an answer comes.
// - The sign-in page as the answer (the session ended, or idled out: these
//   refreshes do not count as activity): the page reloads, which leads to
//   the sign-in form.
//
// The pages' CSP allows this file and no inline script. No frameworks,
// nothing loaded from elsewhere.
(function () {
  'use strict';

  var MAX_BACKOFF_MS = 60000;
  var regions = new Map(); // id -> { every: ms, due: time, html: last seen }
  var failures = 0;
  var timer = null;
  var stopped = false;
  var status = null;

  // Forms carry a fresh one-time nonce on every render: compare without it,
  // or every answer would look changed.
  function normalize(html) {
    return html.replace(/([?&]nonce=)[0-9a-f]+/g, '$1');
  }

  function seconds(el) {
    var n = parseInt(el.getAttribute('data-live'), 10);
    return n > 0 ? n * 1000 : 0;
  }

  function scan() {
    var now = Date.now();
    document.querySelectorAll('[data-live][id]').forEach(function (el) {
      var every = seconds(el);
      if (every && !regions.has(el.id)) {
        regions.set(el.id, { every: every, due: now + every, html: normalize(el.innerHTML) });
      }
    });
  }

  function busy(el) {
    var active = document.activeElement;
    return active && active !== document.body && el.contains(active) && active.closest('form');
  }

  function showStatus(reconnecting) {
    if (!status) {
      if (!reconnecting) return;
      status = document.createElement('div');
      status.id = 'live-status';
      status.setAttribute('role', 'status');
      status.textContent = 'reconnecting…';
      document.body.appendChild(status);
    }
    status.hidden = !reconnecting;
    regions.forEach(function (_, id) {
      var el = document.getElementById(id);
      if (el) el.classList.toggle('live-stale', reconnecting);
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped || document.hidden || regions.size === 0) return;
    var next = Infinity;
    regions.forEach(function (r) { next = Math.min(next, r.due); });
    timer = setTimeout(tick, Math.max(0, next - Date.now()));
  }

  // Sent elsewhere (the dashboard's sign-in page once the session ended):
  // the whole page goes there.
  function movedAway(response) {
    return response.redirected &&
      new URL(response.url, location.href).pathname !== location.pathname;
  }

  function tick() {
    var now = Date.now();
    var due = [];
    regions.forEach(function (r, id) {
      var el = document.getElementById(id);
      if (!el) {
        regions.delete(id);
      } else if (r.due <= now) {
        if (busy(el)) {
          r.due = now + r.every;
        } else {
          due.push(id);
        }
      }
    });
    if (due.length === 0) {
      schedule();
      return;
    }
    fetch(location.href, {
      credentials: 'same-origin',
      cache: 'no-store',
      // Tells the gateway this is no person's click: an unattended page
      // still signs out when the session idles out.
      headers: { 'X-Live-Refresh': '1' },
    })
      .then(function (response) {
        if (movedAway(response)) {
          stopped = true;
          location.reload();
          return null;
        }
        if (response.status !== 200) throw new Error('HTTP ' + response.status);
        return response.text();
      })
      .then(function (text) {
        if (text === null) return;
        var answer = new DOMParser().parseFromString(text, 'text/html');
        failures = 0;
        showStatus(false);
        var at = Date.now();
        due.forEach(function (id) { update(id, answer, at); });
        scan();
        schedule();
      })
      .catch(function () {
        failures += 1;
        showStatus(true);
        var at = Date.now();
        due.forEach(function (id) {
          var r = regions.get(id);
          if (r) r.due = at + Math.min(r.every * Math.pow(2, failures), MAX_BACKOFF_MS);
        });
        schedule();
      });
  }

  function update(id, answer, now) {
    var r = regions.get(id);
    var el = document.getElementById(id);
    var fresh = answer.getElementById(id);
    if (!r || !el || !fresh) {
      regions.delete(id);
      return;
    }
    var html = normalize(fresh.innerHTML);
    if (html !== r.html && !busy(el)) {
      el.innerHTML = fresh.innerHTML;
      r.html = html;
    }
    var every = seconds(fresh);
    if (every) {
      r.every = every;
      r.due = now + every;
    } else {
      el.removeAttribute('data-live');
      regions.delete(id);
    }
  }

  document.addEventListener('visibilitychange', schedule);
  // Back online: try at once rather than wait out the backoff.
  window.addEventListener('online', function () {
    var now = Date.now();
    regions.forEach(function (r) { r.due = Math.min(r.due, now); });
    schedule();
  });
  scan();
  schedule();
})();
