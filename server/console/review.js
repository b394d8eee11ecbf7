// qlorad review console: one reviewer's session on an evaluation's review sample.
// The server holds the state: every complete judgement (two ratings + a preference) is
// PUT as soon as it changes, and opening the session again starts at the first item
// that is not complete. Blind samples show outputs as A/B; the labels come back from
// the server only after this reviewer has submitted.
'use strict';

(() => {
  const {api, el, $, mount, showError} = Console;
  const B_KEYS = {q: 1, w: 2, e: 3, r: 4, t: 5};

  let session = null;  // the server's ReviewSession
  let index = 0;       // the item shown
  let saving = Promise.resolve();

  const complete = (it) => it.rating_a > 0 && it.rating_b > 0 && it.preference !== '';
  const ratedCount = () => session.items.filter(complete).length;
  const current = () => session.items[index];

  function setSaveState(text, cls) {
    const pill = $('#save-state');
    pill.textContent = text;
    pill.className = 'pill ' + (cls || '');
  }

  // Saves the current item when it is complete; resolves when the server has it.
  function save(item) {
    if (session.submitted || !complete(item)) return saving;
    const body = {rating_a: item.rating_a, rating_b: item.rating_b, preference: item.preference, comment: item.comment};
    const path = '/api/reviews/' + encodeURIComponent(session.evaluation_id) + '/items/' + encodeURIComponent(item.item_id);
    setSaveState('saving\u2026');
    saving = saving.then(() => api('PUT', path, body)).then(() => {
      setSaveState('saved', 'saved');
      renderProgress();
    }).catch((err) => {
      setSaveState('not saved', 'error');
      showError('#review-error', err);
    });
    return saving;
  }

  function renderProgress() {
    const n = session.items.length;
    $('#progress').textContent = (index + 1) + '/' + n;
    $('#progress').dataset.rated = ratedCount();
    $('#meter-fill').style.width = (100 * ratedCount() / n) + '%';
    $('#submit').disabled = session.submitted || ratedCount() < n;
    $('#prev').disabled = index === 0;
    $('#next').disabled = index >= n - 1;
  }

  function renderRatingButtons(side) {
    const box = $('#rating-' + side);
    box.replaceChildren();
    const item = current();
    for (let v = session.scale[0]; v <= session.scale[1]; v++) {
      const on = item['rating_' + side] === v;
      box.append(el('button', {type: 'button', class: on ? 'on' : '', 'data-value': v, disabled: session.submitted,
                               onclick: () => rate(side, v)}, v));
    }
  }

  function renderItem() {
    const item = current();
    $('#item-input').textContent = item.input;
    $('#item-reference').textContent = item.reference || '\u2014';
    $('#output-a').textContent = item.output_a;
    $('#output-b').textContent = item.output_b;
    $('#label-a').textContent = item.label_a ? '(' + item.label_a + ')' : '';
    $('#label-b').textContent = item.label_b ? '(' + item.label_b + ')' : '';
    renderRatingButtons('a');
    renderRatingButtons('b');
    for (const b of document.querySelectorAll('#preference button')) {
      b.classList.toggle('on', b.dataset.pref === item.preference);
      b.disabled = session.submitted;
    }
    $('#comment').value = item.comment || '';
    $('#comment').disabled = session.submitted;
    document.body.dataset.item = item.item_id;
    renderProgress();
  }

  function rate(side, value) {
    if (session.submitted) return;
    current()['rating_' + side] = value;
    renderItem();
    save(current());
  }

  function prefer(value) {
    if (session.submitted) return;
    current().preference = value;
    renderItem();
    save(current());
  }

  async function go(delta) {
    const item = current();
    item.comment = $('#comment').value;
    await save(item);
    const next = index + delta;
    if (next < 0 || next >= session.items.length) return;
    index = next;
    $('#review-error').textContent = '';
    renderItem();
  }

  async function submit() {
    if (session.submitted) return;
    await go(0);
    if (ratedCount() < session.items.length) {
      $('#review-error').textContent = (session.items.length - ratedCount()) + ' item(s) are not rated yet.';
      return;
    }
    try {
      const result = await api('POST', '/api/reviews/' + encodeURIComponent(session.evaluation_id) + '/submit');
      await load(session.evaluation_id, index);  // labels are revealed now
      const done = $('#review-done');
      done.hidden = false;
      done.replaceChildren(el('p', {class: 'ok', id: 'submitted-note'}, 'Submitted. The identities of A and B are shown now. ',
                              el('a', {href: '#/adapters/' + session.adapter_id}, 'See the adapter page'), '.'));
      document.body.dataset.submitted = 'true';
      Console.lastSummary = result.summary;
    } catch (err) { showError('#review-error', err); }
  }

  function onKey(e) {
    if (!session || document.body.dataset.view !== 'review') return;
    if (e.target && e.target.id === 'comment') {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const digit = /^Digit([1-9])$/.exec(e.code);
    let handled = true;
    if (digit && e.shiftKey) rate('b', Number(digit[1]));
    else if (digit) rate('a', Number(digit[1]));
    else if (B_KEYS[e.key] !== undefined) rate('b', B_KEYS[e.key]);
    else if (e.key === 'a' || e.key === 'A') prefer('A');
    else if (e.key === 'b' || e.key === 'B') prefer('B');
    else if (e.key === 'x' || e.key === '=') prefer('tie');
    else if (e.key === 'n' || e.key === 'Enter' || e.key === 'ArrowRight') go(1);
    else if (e.key === 'p' || e.key === 'ArrowLeft') go(-1);
    else if (e.key === 'c') $('#comment').focus();
    else if (e.key === 's') submit();
    else handled = false;
    if (handled) e.preventDefault();
  }

  async function load(evaluationId, at) {
    session = await api('GET', '/api/reviews/' + encodeURIComponent(evaluationId));
    const firstOpen = session.items.findIndex((it) => !complete(it));
    index = at !== undefined ? at : (firstOpen < 0 ? 0 : firstOpen);
    $('#review-eval').textContent = session.evaluation_id;
    if (session.items.length) renderItem();
    setSaveState(session.submitted ? 'submitted' : (ratedCount() ? 'resumed' : 'new'), session.submitted ? 'saved' : '');
  }

  async function renderReview(evaluationId) {
    mount('tpl-review');
    session = null;
    delete document.body.dataset.submitted;
    $('#prev').addEventListener('click', () => go(-1));
    $('#next').addEventListener('click', () => go(1));
    $('#submit').addEventListener('click', submit);
    for (const b of document.querySelectorAll('#preference button')) b.addEventListener('click', () => prefer(b.dataset.pref));
    $('#comment').addEventListener('change', () => { current().comment = $('#comment').value; save(current()); });
    try {
      await load(evaluationId);
      if (session.submitted) document.body.dataset.submitted = 'true';
      if (!session.items.length) $('#review-error').textContent = 'This review sample has no items.';
      document.body.dataset.view = 'review';
    } catch (err) {
      showError('#review-error', err);
      document.body.dataset.view = 'review-error';
    }
  }

  document.addEventListener('keydown', onKey);
  Console.views.review = renderReview;
})();
