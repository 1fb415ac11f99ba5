// live.js: refreshes the parts of a page that change on their own (the
// gateway's dashboard, the shop's order page).
//
// An element with an `id` and `data-live="SECONDS"` is refreshed every that
// many seconds: the page's own URL is fetched again and the element takes the
// content of the element with the same id in the answer, when it changed. An
// answer whose element has no `data-live` any more (nothing left pending) is
// shown once more and that element is left alone from then on.
//
// - One fetch serves every element due at the same time, and one fetch at
//   a time: a wake-up (tab shown, back online) during a fetch waits for it.
// - Nothing is fetched while the tab is hidden, nor for an element the
//   person is using: one of its form controls has the focus, or holds what
//   was typed or chosen (differs from its default). What is typed stays,
//   even through the last answer, which waits until the element is free.
// - A failed fetch, one taking over 15 s, or an answer other than 200
//   backs off (doubling, up to a minute) and says "reconnecting…" in a
//   corner until an answer comes.
// - An answer redirected to another page (the dashboard's sign-in, once
//   the session ended or idled out: these refreshes do not count as
//   activity): the page reloads, which leads there.
//
// The pages' CSP allows this file and no inline script. No frameworks,
// nothing loaded from elsewhere.
(function () {
  'use strict';

  var MAX_BACKOFF_MS = 60000;
  // A fetch still unanswered after this is a failure: without a limit, a
  // hung connection would stop the refreshes for good.
  var TIMEOUT_MS = 15000;
  var regions = new Map(); // id -> { every: ms, due: time, html: last seen }
  var failures = 0;
  var timer = null;
  var stopped = false;
  var status = null;
  var inFlight = false;
  var sent = 0; // number of the latest fetch
  var applied = 0; // number of the latest fetch whose answer was applied

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

  // A single-choice select shows its last `selected` option, or its first
  // when none is marked.
  function selectChanged(select) {
    var options = select.options;
    if (select.multiple) {
      for (var i = 0; i < options.length; i++) {
        if (options[i].selected !== options[i].defaultSelected) return true;
      }
      return false;
    }
    var initial = 0;
    for (var j = 0; j < options.length; j++) {
      if (options[j].defaultSelected) initial = j;
    }
    return options.length > 0 && select.selectedIndex !== initial;
  }

  // Something typed or chosen that is not in the page as sent.
  function changed(el) {
    var controls = el.querySelectorAll('input, textarea, select');
    for (var i = 0; i < controls.length; i++) {
      var c = controls[i];
      if (c.tagName === 'SELECT') {
        if (selectChanged(c)) return true;
      } else if (c.type === 'checkbox' || c.type === 'radio') {
        if (c.checked !== c.defaultChecked) return true;
      } else if (c.value !== c.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function busy(el) {
    var active = document.activeElement;
    var focused = active && active !== document.body && el.contains(active) && active.closest('form');
    return Boolean(focused) || changed(el);
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

  // The fetch under way reschedules when it settles.
  function schedule() {
    clearTimeout(timer);
    if (inFlight || stopped || document.hidden || regions.size === 0) return;
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
    inFlight = true;
    var number = ++sent;
    var controller = new AbortController();
    var limit = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    fetch(location.href, {
      credentials: 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
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
        // Never put an older state over a newer one already shown.
        if (text === null || number < applied) return;
        applied = number;
        var answer = new DOMParser().parseFromString(text, 'text/html');
        failures = 0;
        showStatus(false);
        var at = Date.now();
        due.forEach(function (id) { update(id, answer, at); });
        scan();
      })
      .catch(function () {
        // Once per fetch, whatever failed (network, status, timeout).
        failures += 1;
        showStatus(true);
        var at = Date.now();
        due.forEach(function (id) {
          var r = regions.get(id);
          if (r) r.due = at + Math.min(r.every * Math.pow(2, failures), MAX_BACKOFF_MS);
        });
      })
      .then(function () {
        clearTimeout(limit);
        inFlight = false;
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
    var every = seconds(fresh);
    if (busy(el)) {
      // In use since the fetch left: asked again once free, the last answer
      // included (the region stays until its final content is shown).
      r.due = now + (every || r.every);
      return;
    }
    var html = normalize(fresh.innerHTML);
    if (html !== r.html) {
      el.innerHTML = fresh.innerHTML;
      r.html = html;
    }
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
