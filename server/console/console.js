// qlorad review console: the shell (token, API calls, hash routes, the queue).
// Routes: #/queue, #/review/<evaluation_id>, #/adapters/<adapter_id>. The views of
// review.js and adapter.js register themselves in Console.views.
'use strict';

const Console = (() => {
  const TOKEN_KEY = 'qlorad.console.token';
  const views = {};
  let me = null;  // {name, role, can_review, can_deploy} of the signed-in token

  const $ = (sel, root = document) => root.querySelector(sel);
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  // A JSON API call; throws an Error carrying .status (HTTP) and .code (absl code name).
  async function api(method, path, body) {
    const init = {method, headers: {'Authorization': 'Bearer ' + token()}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const message = data && data.error ? data.error.message : text;
      const err = new Error(res.status + ' ' + (data && data.error ? data.error.code : res.statusText) + ': ' + message);
      err.status = res.status;
      err.code = data && data.error ? data.error.code : '';
      if (res.status === 401) signOut('Your token was refused: ' + message);
      throw err;
    }
    return data;
  }

  // Element helper: el('td', {class: 'num'}, 'text', child...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function mount(templateId) {
    const main = $('#main');
    main.replaceChildren($('#' + templateId).content.cloneNode(true));
    return main;
  }

  function showError(where, err) {
    const node = typeof where === 'string' ? $(where) : where;
    if (node) node.textContent = err.message || String(err);
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    renderSignIn(message || '');
  }

  function renderSignIn(message) {
    $('#nav').hidden = true;
    mount('tpl-sign-in');
    $('#sign-in-error').textContent = message || '';
    $('#sign-in-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
      try {
        await whoami();
        route();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        showError('#sign-in-error', err);
      }
    });
    $('#token').focus();
  }

  async function whoami() {
    me = await api('GET', '/api/whoami');
    $('#who').textContent = me.name + ' (' + me.role + ')';
    $('#nav').hidden = false;
    return me;
  }

  function progressText(e) {
    return e.submitted ? 'submitted' : e.rated + '/' + e.items + ' rated';
  }

  async function renderQueue() {
    mount('tpl-queue');
    const body = $('#queue-table tbody');
    if (me.can_review) {
      try {
        const queue = await api('GET', '/api/queue');
        for (const e of queue.entries) {
          body.append(el('tr', {'data-evaluation': e.evaluation_id},
            el('td', {}, el('code', {}, e.evaluation_id)),
            el('td', {}, el('a', {href: '#/adapters/' + e.adapter_id}, e.adapter_id)),
            el('td', {}, e.dataset_id),
            el('td', {}, e.blind ? 'blind' : 'open'),
            el('td', {class: 'queue-progress'}, progressText(e)),
            el('td', {}, (e.submitted_reviewers || []).join(', ') || '\u2014'),
            el('td', {}, el('a', {href: '#/review/' + e.evaluation_id, class: 'review-link'},
                             e.submitted ? 'Open' : (e.rated > 0 ? 'Resume' : 'Start')))));
        }
        $('#queue-note').textContent = queue.entries.length
          ? queue.entries.length + ' review sample(s). Ratings are saved as you go.'
          : 'Nothing to review: no evaluation has an exported review sample yet.';
      } catch (err) { showError('#queue-note', err); }
    } else {
      $('#queue-note').textContent = 'Your role (' + me.role + ') does not review; pick an adapter below.';
    }
    try {
      const list = await api('GET', '/api/adapters');
      for (const a of list.adapters) {
        $('#adapter-list').append(el('li', {}, el('a', {href: '#/adapters/' + a.adapter_id}, a.adapter_id), ' ',
                                         el('span', {class: 'pill'}, a.state)));
      }
    } catch (err) { showError('#queue-note', err); }
    document.body.dataset.view = 'queue';
  }

  async function route() {
    if (!token()) return renderSignIn();
    try {
      if (!me) await whoami();
    } catch (err) {
      return;  // api() signed out on 401; other errors leave the sign-in form
    }
    const hash = location.hash.replace(/^#\/?/, '');
    const [view, ...rest] = hash.split('/');
    const arg = decodeURIComponent(rest.join('/'));
    document.body.dataset.view = 'loading';
    if (views[view] && arg) return views[view](arg);
    if (hash !== 'queue') {
      history.replaceState(null, '', '#/queue');
    }
    return renderQueue();
  }

  function start() {
    $('#sign-out').addEventListener('click', () => { signOut('Signed out.'); location.hash = '#/queue'; });
    window.addEventListener('hashchange', route);
    route();
  }

  document.addEventListener('DOMContentLoaded', start);
  return {api, el, $, mount, showError, views, me: () => me};
})();
