// Hapax console: draws the snapshot that /console/events sends once a second (or /console/api/state,
// polled, when the event stream cannot be used). Every value from the server is written with
// textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const FAILOVER_WINDOW_MS = 5 * 60 * 1000;
  let traffic;
  let latency;
  let polling;
  let source;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props ?? {})) {
      if (value === undefined || value === null) continue;
      if (key === 'class') node.className = value;
      else if (key === 'title') node.title = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const plural = (n, word) => `${number(n)} ${word}${n === 1 ? '' : 's'}`;
  const number = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
  const ms = (v) => (v === null || v === undefined ? '–' : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v).toLocaleString('en-US')} ms`);
  const percent = (v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%`);
  const cost = (v) => (v ? `$${v < 1 ? v.toFixed(4) : v.toFixed(2)}` : '–');
  const clock = (at) => new Date(at).toLocaleTimeString('en-GB', { hour12: false });

  function badge(text, tone, cls) {
    return el('span', { class: `badge ${tone}${cls ? ` ${cls}` : ''}`, 'data-state': text }, text);
  }

  function replaceRows(table, rows, empty) {
    const body = $(table).tBodies[0];
    if (rows.length === 0) {
      const columns = $(table).tHead.rows[0].cells.length;
      body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: String(columns) }, empty)));
    } else body.replaceChildren(...rows);
  }

  function renderStats(state) {
    const t = state.traffic;
    $('stat-rps').textContent = t.requests_per_second.toFixed(t.requests_per_second < 10 ? 2 : 1);
    $('stat-requests').textContent = `${number(t.requests)} in ${t.window_seconds}s · ${number(t.totals.requests)} total`;
    $('stat-p50').textContent = ms(t.p50_ms);
    $('stat-p95').textContent = ms(t.p95_ms);
    $('stat-p99').textContent = `p99 ${ms(t.p99_ms)}`;
    $('stat-errors').textContent = number(t.errors);
    $('stat-error-rate').textContent = t.error_rate === null ? 'no requests' : `${percent(t.error_rate)} of requests · ${number(t.rejected)} 4xx`;
    const failovers = state.events.filter((e) => e.kind === 'failover' && e.at > state.now - FAILOVER_WINDOW_MS).reduce((n, e) => n + (e.count ?? 1), 0);
    $('stat-failovers').textContent = number(failovers);
    $('stat-failovers').parentElement.classList.toggle('warn', failovers > 0);
  }

  function renderHeader(state) {
    const total = state.providers.length;
    const ok = state.healthy_providers;
    const overall = $('overall');
    overall.textContent = `${ok}/${total} providers available`;
    overall.className = `pill ${ok === total ? 'good' : ok === 0 ? 'bad' : 'warn'}`;
    $('loaded').textContent = `config loaded ${new Date(state.config.loaded_at).toLocaleString('en-GB', { hour12: false })}`;
  }

  function breakerCell(p) {
    const tone = p.breaker === 'closed' ? 'good' : p.breaker === 'open' ? 'bad' : 'warn';
    const label = p.breaker.replace('_', '-');
    let detail = '';
    if (p.breaker === 'open') detail = `half-opens in ${Math.ceil(p.ms_until_half_open / 1000)}s`;
    else if (p.consecutive_failures > 0) detail = `${p.consecutive_failures}/${p.failure_threshold} failures`;
    if (p.times_opened > 0) detail += `${detail ? ' · ' : ''}opened ${p.times_opened}×`;
    return el('td', { class: 'breaker' }, badge(label, tone), detail && el('span', { class: 'detail' }, detail));
  }

  function renderProviders(state) {
    const rows = state.providers.map((p) =>
      el(
        'tr',
        { 'data-provider': p.name },
        el('td', { class: 'name' }, p.name, p.base_url && el('span', { class: 'detail' }, p.base_url)),
        el('td', {}, p.type, p.model && el('span', { class: 'detail' }, p.model)),
        el(
          'td',
          { class: 'health' },
          badge(p.healthy ? 'healthy' : 'unhealthy', p.healthy ? 'good' : 'bad'),
          p.rate_limited && badge('rate limited', 'warn'),
          p.errors_since_healthy > 0 && el('span', { class: 'detail' }, `${plural(p.errors_since_healthy, 'error')} since healthy`),
        ),
        breakerCell(p),
        p.latency_ms === null
          ? el('td', { class: 'num', title: 'no answer from this provider yet (probe or request)' }, '–', el('span', { class: 'detail' }, 'no answer yet'))
          : el('td', { class: 'num' }, ms(p.latency_ms), el('span', { class: 'detail' }, `avg ${ms(p.latency_avg_ms)}`)),
        el('td', { class: `num${p.error_rate ? ' bad-text' : ''}` }, percent(p.error_rate), el('span', { class: 'detail' }, `${number(p.failures_total)} of ${number(p.attempts_total)} ${p.attempts_total === 1 ? 'try' : 'tries'} failed`)),
        el('td', { class: 'num' }, number(p.requests)),
        el('td', { class: 'num' }, number(p.in_flight), p.queue_depth > 0 && el('span', { class: 'detail' }, `${p.queue_depth} queued`)),
      ),
    );
    replaceRows('providers', rows, 'No providers configured.');
    labelCells('providers');
  }

  // On a phone the wide tables stack (CSS: table.stack); each cell then shows its column's name.
  function labelCells(table) {
    const names = [...$(table).tHead.rows[0].cells].map((th) => th.textContent);
    for (const row of $(table).tBodies[0].rows) [...row.cells].forEach((cell, i) => cell.colSpan === 1 && cell.setAttribute('data-label', names[i] ?? ''));
  }

  // The card's inner width: never wider than the screen (a phone is 360-430 px wide).
  const chartWidth = (container) => Math.max(200, Math.min(container.clientWidth, document.documentElement.clientWidth - 40));

  function chart(container, series, colors, gaps) {
    const width = chartWidth(container);
    // Narrow screens get fewer time labels (more room between ticks) so they never overlap.
    const space = width < 480 ? 110 : 70;
    const opts = {
      width,
      height: 200,
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [{ stroke: '#5b6573', grid: { stroke: '#eef1f5' }, space }, { stroke: '#5b6573', grid: { stroke: '#eef1f5' }, size: 48, space: 30 }],
      // Latency has no value for seconds without requests: join the dots across them, and draw the dots.
      series: [{}, ...series.map((label, i) => ({ label, stroke: colors[i], width: 2, fill: i === 0 ? `${colors[i]}1f` : undefined, spanGaps: gaps, points: { show: gaps, size: 5 } }))],
    };
    return new uPlot(opts, [[], ...series.map(() => [])], container);
  }

  function renderCharts(state) {
    const s = state.traffic.series;
    if (typeof uPlot === 'undefined') return;
    if (!traffic) {
      traffic = chart($('chart-traffic'), ['requests', 'errors (5xx)'], ['#2563eb', '#dc2626'], false);
      latency = chart($('chart-latency'), ['p50', 'p95', 'p99'], ['#059669', '#d97706', '#7c3aed'], true);
    }
    traffic.setData([s.t, s.requests, s.errors]);
    latency.setData([s.t, s.p50, s.p95, s.p99]);
    // A few dots say nothing about latency: say so until there are requests in enough seconds.
    const seconds = s.p50.filter((v) => v !== null).length;
    $('latency-sparse').hidden = seconds >= 5;
    $('chart-latency').classList.toggle('sparse', seconds < 5);
  }

  function renderEvents(state) {
    const list = $('events');
    if (state.events.length === 0) {
      list.replaceChildren(el('li', { class: 'empty' }, 'Nothing yet: failovers, breaker and health changes and reloads show up here.'));
      return;
    }
    const tones = { failover: 'warn', breaker: 'bad', health: 'bad', reload: 'info' };
    list.replaceChildren(
      ...state.events.slice(0, 30).map((e) => {
        const tone = e.kind === 'breaker' && /→ closed|→ half-open/.test(e.text) ? 'good' : e.kind === 'health' && /healthy again/.test(e.text) ? 'good' : tones[e.kind];
        return el('li', { 'data-kind': e.kind }, el('time', {}, clock(e.at)), badge(e.kind, tone), el('span', { class: 'text' }, e.text));
      }),
    );
  }

  function renderRequests(state) {
    const rows = state.requests.slice(0, 15).map((r) =>
      el(
        'tr',
        { title: `request id ${r.request_id}` },
        el('td', {}, clock(r.at)),
        el('td', {}, `${r.method} ${r.route}`),
        el('td', { class: r.key ? '' : 'muted-text' }, r.key ?? (r.status === 401 ? 'no valid key' : 'none')),
        el('td', {}, r.protocol ?? '–'),
        el('td', { class: `num ${r.status >= 500 ? 'bad-text' : r.status >= 400 ? 'warn-text' : ''}` }, r.status),
        el('td', {}, r.provider ?? (r.attempts > 0 ? 'none answered' : '–')),
        el('td', { class: `num${r.attempts > 1 ? ' warn-text' : ''}`, title: r.attempts === 0 ? 'refused before any provider was tried' : undefined }, r.attempts ?? 0),
        el('td', { class: 'num' }, Math.round(r.latency_ms)),
      ),
    );
    replaceRows('requests', rows, 'No requests yet.');
    labelCells('requests');
  }

  function usageRows(table, rows, empty) {
    const unpriced = (r) => (r.unpriced_requests ? `${r.unpriced_requests} answer(s) from models without a price are not in this cost` : undefined);
    replaceRows(
      table,
      rows.slice(0, 12).map((r) =>
        el('tr', { 'data-name': r.name }, el('td', {}, r.name), el('td', { class: 'num' }, number(r.requests)), el('td', { class: 'num' }, number(r.input_tokens)), el('td', { class: 'num' }, number(r.output_tokens)), el('td', { class: `num${r.unpriced_requests ? ' warn-text' : ''}`, title: unpriced(r) }, `${cost(r.cost_usd)}${r.unpriced_requests ? ' *' : ''}`)),
      ),
      empty,
    );
    labelCells(table);
  }

  function renderBudgets(list) {
    const amount = (unit, v) => (unit === 'usd' ? `$${v.toFixed(2)}` : number(v));
    const tone = { ok: 'good', warning: 'warn', exhausted: 'bad' };
    replaceRows(
      'budgets',
      (list ?? []).map((b) =>
        el(
          'tr',
          { 'data-budget': `${b.scope}:${b.budget}:${b.window}:${b.unit}` },
          el('td', {}, `${b.scope} ${b.budget}`),
          el('td', {}, b.window),
          el('td', { class: 'num' }, amount(b.unit, b.spent)),
          el('td', { class: 'num' }, amount(b.unit, b.limit)),
          el('td', { class: 'state' }, badge(b.state === 'ok' ? `${Math.round(b.spent_ratio * 100)}%` : b.state, tone[b.state])),
        ),
      ),
      'No budgets configured.',
    );
  }

  let shownConfig = '';
  function renderConfig(state) {
    const text = JSON.stringify(state.config.values, null, 2);
    if (text !== shownConfig) {
      $('config').textContent = text;
      shownConfig = text;
    }
    $('config-source').textContent = `${state.config.source} · loaded ${new Date(state.config.loaded_at).toLocaleString('en-GB', { hour12: false })} · secrets masked`;
    $('warnings').replaceChildren(...state.config.warnings.map((w) => el('li', {}, w)));
    const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
    $('restart').replaceChildren(
      ...state.config.pending_restart.map((p) => el('li', { 'data-key': p.key }, `${p.key}: ${show(p.file)} in the file, ${show(p.running)} running; takes effect after a restart`)),
      ...state.config.overridden.map((key) => el('li', { class: 'override', 'data-key': key }, `${key}: running value set at start (command-line flag or port 0), not the file's`)),
    );
  }

  function render(state) {
    renderHeader(state);
    renderStats(state);
    renderProviders(state);
    renderCharts(state);
    renderEvents(state);
    renderRequests(state);
    usageRows('usage-client', state.usage.by_client, 'No requests yet.');
    usageRows('usage-label', state.usage.by_label, 'No route has metrics_labels.');
    usageRows('usage-route', state.usage.by_route, 'No requests yet.');
    $('pricing-hint').hidden = state.usage.priced;
    $('unpriced-models').textContent = (state.usage.unpriced_models || []).map((m) => `${m.model}: ${m.requests}`).join(', ');
    renderBudgets(state.budgets);
    renderConfig(state);
  }

  function setLive(text, tone) {
    const live = $('live');
    live.textContent = text;
    live.className = `pill ${tone}`;
  }

  async function poll() {
    try {
      const response = await fetch('/console/api/state', { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (response.status === 401 || response.status === 403) {
        location.reload();
        return;
      }
      if (response.ok) {
        render(await response.json());
        setLive('live (polling)', 'good');
      } else setLive(`error ${response.status}`, 'bad');
    } catch {
      setLive('offline', 'bad');
    }
  }

  function connect() {
    if (typeof EventSource === 'undefined') {
      polling = setInterval(poll, 2000);
      void poll();
      return;
    }
    source = new EventSource('/console/events');
    source.addEventListener('open', () => setLive('live', 'good'));
    source.addEventListener('state', (event) => {
      if (polling) {
        clearInterval(polling);
        polling = undefined;
      }
      setLive('live', 'good');
      render(JSON.parse(event.data));
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (signed out, console disabled) or is gone: ask the JSON endpoint.
        source.close();
        setLive('reconnecting…', 'warn');
        void poll();
        if (!polling) polling = setInterval(poll, 2000);
        setTimeout(connect, 5000);
      } else setLive('reconnecting…', 'warn');
    });
  }

  window.addEventListener('resize', () => {
    for (const [plot, id] of [
      [traffic, 'chart-traffic'],
      [latency, 'chart-latency'],
    ]) {
      if (plot) plot.setSize({ width: chartWidth($(id)), height: 200 });
    }
  });

  connect();
})();
