// qlorad review console: an adapter's page. Its evaluations (headline metric with the
// paired-bootstrap interval, confusion-matrix heatmaps for classification, the report),
// the human review summary (Cohen's kappa, win rate with its 95 % interval), the CI
// gate's verdict for an alias, the approve/reject form (sends the evidence shown) and
// the audit trail of the adapter and its evaluations.
'use strict';

(() => {
  const {api, el, $, mount, showError} = Console;

  const fmt = (x, digits = 3) => (x === null || x === undefined || Number.isNaN(x)) ? '\u2014' : Number(x).toFixed(digits);
  const pct = (x) => (x === null || x === undefined) ? '\u2014' : (100 * x).toFixed(1) + '%';

  let evidence = {evaluation_ids: [], review_summary: null};

  function heatmap(title, report) {
    const labels = report.labels || [];
    const matrix = report.confusion_matrix || [];
    const max = Math.max(1, ...matrix.flat());
    const table = el('table', {class: 'heatmap'}, el('caption', {}, title));
    table.append(el('tr', {}, el('th', {}, 'true \u2193 / pred \u2192'), labels.map((l) => el('th', {}, l))));
    matrix.forEach((row, i) => {
      table.append(el('tr', {}, el('th', {}, labels[i]), row.map((v, j) => {
        const alpha = (0.08 + 0.85 * v / max).toFixed(3);
        const hue = i === j ? '37, 87, 214' : '179, 38, 30';
        const cell = el('td', {title: labels[i] + ' \u2192 ' + labels[j] + ': ' + v}, v);
        cell.style.background = 'rgba(' + hue + ', ' + alpha + ')';
        if (v / max > 0.55) cell.style.color = '#fff';
        return cell;
      })));
    });
    return table;
  }

  function reviewStats(review) {
    const s = review && review.summary;
    if (!s) return el('p', {class: 'muted'}, review ? 'Review sample exported; no review submitted yet.' : 'No human review.');
    const w = s.win_rate || {};
    const kappa = (a) => a && a.cohen_kappa !== undefined && a.cohen_kappa !== null ? fmt(a.cohen_kappa, 3) : '\u2014';
    return el('div', {class: 'summary review-summary'},
      el('div', {class: 'stat', id: 'stat-reviewers'}, 'Reviewers', el('b', {}, (s.reviewers || []).length),
         (s.reviewers || []).join(', ')),
      el('div', {class: 'stat', id: 'stat-win-rate'}, 'Adapter win rate', el('b', {}, pct(w.rate)),
         '95% CI [' + pct(w.lower) + ', ' + pct(w.upper) + ']', el('br'),
         (w.wins ?? s.prefer_adapter) + ' wins, ' + (w.losses ?? s.prefer_baseline) + ' losses, ' + (w.ties ?? s.ties) + ' ties'),
      el('div', {class: 'stat', id: 'stat-kappa'}, "Cohen's kappa (ratings)", el('b', {}, kappa(s.rating_agreement)),
         'preferences: ' + kappa(s.preference_agreement)),
      el('div', {class: 'stat'}, 'Mean rating', el('b', {}, fmt(s.mean_adapter_rating, 2) + ' vs ' + fmt(s.mean_baseline_rating, 2)),
         'adapter vs baseline'));
  }

  async function openReport(id, button) {
    try {
      const res = await fetch('/api/evaluations/' + encodeURIComponent(id) + '/report',
                              {headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('qlorad.console.token')}});
      if (!res.ok) throw new Error(res.status + ': ' + (await res.text()));
      const url = URL.createObjectURL(new Blob([await res.text()], {type: 'text/html'}));
      window.open(url, '_blank', 'noopener');
    } catch (err) { button.after(el('span', {class: 'error'}, ' ' + err.message)); }
  }

  function evaluationCard(e) {
    const r = e.record || {};
    const card = el('section', {class: 'card evaluation', 'data-evaluation': e.evaluation_id},
      el('h2', {}, 'Evaluation ', el('code', {}, e.evaluation_id)),
      el('p', {class: 'muted'}, 'dataset ' + e.dataset_id + ' \u00b7 ' + (r.task || '') + ' \u00b7 ' + e.created_at));
    card.append(el('table', {class: 'grid metrics'},
      el('tr', {}, el('th', {}, 'metric'), el('th', {class: 'num'}, 'baseline'), el('th', {class: 'num'}, 'adapter'),
         el('th', {class: 'num'}, '\u0394 95% CI')),
      el('tr', {}, el('td', {}, e.headline_metric), el('td', {class: 'num'}, fmt(e.baseline_value)),
         el('td', {class: 'num'}, e.has_adapter ? fmt(e.adapter_value) : '\u2014'),
         el('td', {class: 'num'}, e.has_adapter ? '[' + fmt(e.delta_low) + ', ' + fmt(e.delta_high) + ']' : '\u2014'))));
    const maps = el('div', {class: 'heatmaps'});
    for (const [who, sys] of [['baseline', r.baseline], ['adapter', r.adapter]]) {
      if (sys && sys.classification && sys.classification.confusion_matrix) {
        maps.append(heatmap('Confusion matrix: ' + who + ' (accuracy ' + fmt(sys.classification.accuracy) + ')',
                            sys.classification));
      }
    }
    if (maps.children.length) card.append(maps);
    card.append(el('h3', {}, 'Human review'), reviewStats(r.review));
    if (e.has_report) {
      const button = el('button', {type: 'button', class: 'report-link'}, 'Open the evaluation report');
      button.addEventListener('click', () => openReport(e.evaluation_id, button));
      card.append(button);
    }
    return card;
  }

  function auditRows(entries) {
    const body = $('#audit-table tbody');
    body.replaceChildren();
    for (const a of entries) {
      const details = a.details && typeof a.details === 'object' ? JSON.stringify(a.details) : (a.details || '');
      body.append(el('tr', {class: 'audit-row', 'data-action': a.action},
        el('td', {}, a.seq), el('td', {}, a.at), el('td', {}, a.actor), el('td', {}, a.action),
        el('td', {}, a.subject || ((a.entity_type || '') + ':' + (a.entity_id || ''))),
        el('td', {class: 'details'}, details.length > 400 ? details.slice(0, 400) + '\u2026' : details)));
    }
  }

  async function loadAudit(adapterId, evaluationIds) {
    const subjects = ['adapter:' + adapterId, ...evaluationIds.map((id) => 'evaluation:' + id)];
    const all = [];
    for (const subject of subjects) {
      try {
        all.push(...(await api('GET', '/api/audit?subject=' + encodeURIComponent(subject))).entries);
      } catch (err) { if (err.code !== 'UNIMPLEMENTED') throw err; }
    }
    all.sort((x, y) => (x.seq || 0) - (y.seq || 0));
    auditRows(all);
  }

  async function gate(adapterId) {
    const box = $('#gate');
    const input = el('input', {id: 'gate-alias', placeholder: 'alias, e.g. ' + adapterId.split('@')[0] + ':prod'});
    const out = el('p', {id: 'gate-verdict'});
    const check = async () => {
      if (!input.value) return;
      const data = await api('GET', '/api/adapters/' + encodeURIComponent(adapterId) + '?alias=' + encodeURIComponent(input.value));
      if (!data.gate) { out.textContent = data.gate_error || 'The promotion gate is not available.'; return; }
      out.className = data.gate.passed ? 'gate-pass' : 'gate-fail';
      out.textContent = (data.gate.applies ? (data.gate.passed ? 'Gate passes: ' : 'Gate refuses: ') : 'Gate: ') + data.gate.message;
    };
    input.addEventListener('change', () => check().catch((err) => showError(out, err)));
    box.append(el('label', {}, 'CI gate: check promotion to ', input), out);
  }

  async function decide(adapterId, approve) {
    const status = $('#decision-status');
    status.className = '';
    status.textContent = approve ? 'approving\u2026' : 'rejecting\u2026';
    const body = {
      risk_class: $('#risk-class').value,
      documentation_ref: $('#documentation-ref').value,
      note: $('#decision-note').value,
      evidence_evaluation_ids: evidence.evaluation_ids,
      evidence_review_summary: evidence.review_summary,
    };
    try {
      const res = await api('POST', '/api/adapters/' + encodeURIComponent(adapterId) + (approve ? '/approve' : '/reject'), body);
      status.className = 'ok';
      status.textContent = (approve ? 'Approved: ' : 'Rejected: ') + res.adapter.adapter_id + ' is ' + res.adapter.state + '.';
      await renderAdapter(adapterId, status.textContent);
    } catch (err) {
      status.className = 'error';
      status.dataset.status = err.status;
      status.textContent = err.status === 403 ? '403 Forbidden: ' + err.message.replace(/^403 \S+: /, '') : err.message;
    }
  }

  async function renderAdapter(adapterId, notice) {
    document.body.dataset.view = 'loading';
    mount('tpl-adapter');
    $('#adapter-id').textContent = adapterId;
    try {
      const data = await api('GET', '/api/adapters/' + encodeURIComponent(adapterId));
      const a = data.adapter;
      $('#adapter-meta').textContent = 'state ' + a.state + ' \u00b7 trained on ' + (a.dataset_id || '\u2014') + ' \u00b7 aliases ' +
        (a.aliases.length ? a.aliases.join(', ') : 'none') + ' \u00b7 created ' + a.created_at;
      document.body.dataset.adapterState = a.state;
      for (const e of data.evaluations) $('#evaluations').append(evaluationCard(e));
      const reviewed = data.evaluations.find((e) => e.record && e.record.review && e.record.review.summary);
      evidence = {evaluation_ids: data.evaluations.map((e) => e.evaluation_id),
                  review_summary: reviewed ? reviewed.record.review.summary : null};
      $('#evidence').textContent = 'Evidence sent with the decision: evaluations ' +
        (evidence.evaluation_ids.join(', ') || 'none') + (reviewed ? '; the review summary of ' + reviewed.evaluation_id : '; no review');
      $('#approve').addEventListener('click', () => decide(a.adapter_id, true));
      $('#reject').addEventListener('click', () => decide(a.adapter_id, false));
      if (notice) { $('#decision-status').className = 'ok'; $('#decision-status').textContent = notice; }
      await gate(a.adapter_id);
      await loadAudit(a.adapter_id, evidence.evaluation_ids);
      document.body.dataset.view = 'adapter';
    } catch (err) {
      showError('#adapter-meta', err);
      document.body.dataset.view = 'adapter-error';
    }
  }

  Console.views.adapters = renderAdapter;
})();
