// cityops live incidents wall page: draws the Dongcheng boundary and the open incidents on an SVG map,
// lists incident events as they arrive, and keeps both in step with the server through a snapshot
// (GET /api/v1/incidents?state=open) followed by the /ws event stream (incident.opened, incident.cleared,
// resync). Plain ES2020, no build step; every piece of server data reaches the DOM through textContent
// or setAttribute, never innerHTML.
'use strict';

(() => {
  const CONFIG = Object.freeze({
    snapshotUrl: '/api/v1/incidents?state=open&limit=500',
    snapshotLimit: 500,
    boundaryUrl: '/api/v1/map/district',
    socketPath: '/ws',
    socketTypes: 'incident.opened,incident.cleared',
    listCap: 200,
    reconnectInitialMs: 1000,
    reconnectMaxMs: 15000,
    // Frames queued while a resync refetch is in flight; past this the oldest are dropped and the
    // refetch is repeated, because a snapshot taken after the drop already reflects them.
    resyncQueueCap: 50000,
    dotFadeMs: 1600,
    dotPulseMs: 3800,
    noticeMs: 6000,
    topCategoryCount: 6,
    languageStorageKey: 'cityops.lang',
    // Map units per degree of latitude; the projection keeps x and y in the same units.
    mapUnitsPerDegree: 10000,
    mapPadding: 30,
    gridStepDegrees: 0.01,
    // Roughly Dongcheng's bbox: used until (or if never) the boundary file loads, so dots still land.
    fallbackBbox: Object.freeze({ minLon: 116.377, maxLon: 116.454, minLat: 39.859, maxLat: 39.975 }),
  });

  const I18N = {
    zh: {
      'login.title': '登录指挥平台',
      'login.username': '用户名',
      'login.password': '密码',
      'login.submit': '登录',
      'login.failed': '用户名或密码错误，或账号已停用',
      'login.unreachable': '无法连接服务器，请稍后重试',
      'page.title': '城市运行实时事件',
      'page.subtitle': '东城区 · 智慧城管指挥中心',
      'status.connecting': '连接中…',
      'status.connected': '已连接',
      'status.reconnecting': '重连中…',
      'status.retryIn': '{s} 秒后重试',
      'kpi.openNow': '当前未处置告警',
      'kpi.openedSinceLoad': '新增',
      'kpi.clearedSinceLoad': '已恢复',
      'kpi.eventsReceived': '已接收事件',
      'kpi.lastSeq': '最新序号',
      'map.title': '东城区事件分布',
      'map.noOpen': '当前无未处置告警',
      'map.boundaryMissing': '区界未加载',
      'map.scale': '1 公里',
      'legend.title': '设备类型',
      'categories.title': '未处置告警类别',
      'categories.none': '无',
      'list.title': '实时事件流',
      'list.hint': '最新 {n} 条',
      'list.empty': '暂无事件',
      'col.time': '时间',
      'col.category': '事件类别',
      'col.code': '编码',
      'col.device': '设备',
      'col.kind': '类型',
      'col.value': '数值',
      'col.state': '状态',
      'state.open': '未恢复',
      'state.cleared': '已恢复',
      'tooltip.code': '编码',
      'tooltip.device': '设备',
      'tooltip.kind': '类型',
      'tooltip.value': '数值',
      'tooltip.condition': '规则',
      'tooltip.openedAt': '发生时间',
      'tooltip.incident': '事件编号',
      'notice.resynced': '已重新同步',
      'notice.missed': '跳过 {n} 条事件，已按服务器最新状态刷新',
      'notice.truncated': '未处置告警超过 {n} 条，地图只显示前 {n} 条',
      'value.true': '是',
      'value.false': '否',
      'kind.manhole_cover': '井盖',
      'kind.water_level': '积水监测',
      'kind.dust': '扬尘监测',
      'kind.waste_bin': '垃圾箱',
      'kind.noise': '噪声监测',
      'kind.streetlight': '路灯',
      'kind.other': '其他',
      'lang.switch': '切换语言 / Switch language',
    },
    en: {
      'login.title': 'Sign in to the command platform',
      'login.username': 'Username',
      'login.password': 'Password',
      'login.submit': 'Sign in',
      'login.failed': 'Wrong username or password, or the account is disabled',
      'login.unreachable': 'Cannot reach the server; please try again',
      'page.title': 'Live city incidents',
      'page.subtitle': 'Dongcheng District · City management command centre',
      'status.connecting': 'Connecting…',
      'status.connected': 'Connected',
      'status.reconnecting': 'Reconnecting…',
      'status.retryIn': 'Retrying in {s} s',
      'kpi.openNow': 'Open incidents',
      'kpi.openedSinceLoad': 'Opened',
      'kpi.clearedSinceLoad': 'Cleared',
      'kpi.eventsReceived': 'Events received',
      'kpi.lastSeq': 'Last seq',
      'map.title': 'Dongcheng District incidents',
      'map.noOpen': 'No open incidents',
      'map.boundaryMissing': 'Boundary not loaded',
      'map.scale': '1 km',
      'legend.title': 'Device kinds',
      'categories.title': 'Open incidents by category',
      'categories.none': 'None',
      'list.title': 'Live events',
      'list.hint': 'Latest {n}',
      'list.empty': 'No events yet',
      'col.time': 'Time',
      'col.category': 'Category',
      'col.code': 'Code',
      'col.device': 'Device',
      'col.kind': 'Kind',
      'col.value': 'Value',
      'col.state': 'State',
      'state.open': 'Open',
      'state.cleared': 'Cleared',
      'tooltip.code': 'Code',
      'tooltip.device': 'Device',
      'tooltip.kind': 'Kind',
      'tooltip.value': 'Value',
      'tooltip.condition': 'Rule',
      'tooltip.openedAt': 'Opened at',
      'tooltip.incident': 'Incident',
      'notice.resynced': 'Resynchronised',
      'notice.missed': '{n} events skipped; refreshed from the server’s current state',
      'notice.truncated': 'More than {n} open incidents; the map shows the first {n}',
      'value.true': 'yes',
      'value.false': 'no',
      'kind.manhole_cover': 'Manhole cover',
      'kind.water_level': 'Water level',
      'kind.dust': 'Dust',
      'kind.waste_bin': 'Waste bin',
      'kind.noise': 'Noise',
      'kind.streetlight': 'Street lamp',
      'kind.other': 'Other',
      'lang.switch': '切换语言 / Switch language',
    },
  };

  const KIND_COLORS = Object.freeze({
    manhole_cover: '#ff9f43',
    water_level: '#3fa7ff',
    dust: '#d9b26f',
    waste_bin: '#3ddc84',
    noise: '#c77dff',
    streetlight: '#ffe45c',
  });
  const KNOWN_KINDS = Object.keys(KIND_COLORS);
  const OTHER_KIND_COLOR = '#8fa0b3';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** What the page knows; exposed as window.cityops.state for browser tests. */
  const state = {
    language: 'zh',
    /** 'connecting' | 'connected' | 'reconnecting' */
    connection: 'connecting',
    /** Open incidents by id, as the server sent them (snake_case fields). */
    open: new Map(),
    counters: {
      openNow: 0,
      openedSinceLoad: 0,
      clearedSinceLoad: 0,
      eventsReceived: 0,
      /** Highest seq seen (snapshot last_seq or frame seq); null until the first snapshot. */
      lastSeq: null,
    },
    /** True when the snapshot said more open incidents exist than it returned. */
    openListTruncated: false,
    resyncCount: 0,
    /** List entries, newest first, at most CONFIG.listCap. */
    events: [],
  };

  /** Page machinery that tests need not see. */
  const session = {
    socket: null,
    snapshotLoaded: false,
    reconnectDelayMs: CONFIG.reconnectInitialMs,
    reconnectTimer: null,
    resync: { running: false, requested: 0, queue: [] },
    boundary: { loaded: false, loading: false, failed: false },
    projection: null,
    /** String(incident id) -> <g class="dot"> */
    dots: new Map(),
    /** category_code -> { zh, en }, learned from every incident seen (cleared events carry no names). */
    categoryNames: new Map(),
    tooltip: { incidentId: null, pinned: false },
    entryForRow: new WeakMap(),
    nextEntryKey: 1,
    noticeTimer: null,
    summaryFrame: null,
  };

  const dom = {};

  const FRAME_HANDLERS = new Map([
    ['incident.opened', applyIncidentOpened],
    ['incident.cleared', applyIncidentCleared],
  ]);

  // ---------------------------------------------------------------- start

  function start() {
    collectDomRefs();
    state.language = loadLanguage();
    session.projection = makeProjection(CONFIG.fallbackBbox);
    setUpMapLayers();
    applyProjection();
    bindControls();
    applyLanguage();
    startClock();
    window.cityops = { state };
    ensureSession().then(() => {
      loadBoundary();
      connect();
    });
  }

  // ---------------------------------------------------------------- session: the login cookie

  // The API needs a token; the server sets it as an HttpOnly cookie at login, so the page only has to
  // ask for credentials when /api/v1/auth/me says there is no valid session.
  async function ensureSession() {
    for (;;) {
      const response = await fetch('/api/v1/auth/me', { cache: 'no-store' }).catch(() => null);
      if (response && response.ok) {
        state.user = await response.json();
        return;
      }
      if (!response || response.status !== 401) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        continue;
      }
      await showLogin();
    }
  }

  function showLogin() {
    return new Promise((resolve) => {
      const overlay = document.createElement('div');
      overlay.className = 'login-overlay';
      const form = document.createElement('form');
      form.className = 'login-form';
      const title = document.createElement('h2');
      title.textContent = t('login.title');
      const user = labelledInput(t('login.username'), 'text', 'username');
      const pass = labelledInput(t('login.password'), 'password', 'current-password');
      const error = document.createElement('p');
      error.className = 'login-error';
      const submit = document.createElement('button');
      submit.type = 'submit';
      submit.textContent = t('login.submit');
      form.append(title, user.label, pass.label, error, submit);
      overlay.append(form);
      document.body.append(overlay);
      user.input.focus();
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        const response = await fetch('/api/v1/auth/login', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: user.input.value, password: pass.input.value }),
        }).catch(() => null);
        submit.disabled = false;
        if (response && response.ok) {
          overlay.remove();
          resolve();
          return;
        }
        error.textContent = t(response ? 'login.failed' : 'login.unreachable');
        pass.input.value = '';
        pass.input.focus();
      });
    });
  }

  function labelledInput(text, type, autocomplete) {
    const label = document.createElement('label');
    const span = document.createElement('span');
    span.textContent = text;
    const input = document.createElement('input');
    input.type = type;
    input.autocomplete = autocomplete;
    input.required = true;
    label.append(span, input);
    return { label, input };
  }

  function collectDomRefs() {
    const ids = {
      kpiOpenNow: 'kpi-open-now', kpiOpened: 'kpi-opened', kpiCleared: 'kpi-cleared',
      kpiEvents: 'kpi-events', kpiLastSeq: 'kpi-last-seq', statusBadge: 'status-badge',
      statusText: 'status-text', clock: 'clock', langToggle: 'lang-toggle', map: 'map',
      mapWrap: 'map-wrap', mapEmpty: 'map-empty', mapHint: 'map-hint', tooltip: 'tooltip',
      legend: 'legend', topCategories: 'top-categories', eventRows: 'event-rows',
      listEmpty: 'list-empty', listHint: 'list-hint', notice: 'notice',
    };
    for (const [name, id] of Object.entries(ids)) dom[name] = document.getElementById(id);
  }

  function bindControls() {
    dom.langToggle.addEventListener('click', toggleLanguage);
    dom.eventRows.addEventListener('click', onEventRowClick);
    dom.map.addEventListener('click', onMapBackgroundClick);
    document.addEventListener('keydown', (event) => { if (event.key === 'Escape') hideTooltip(); });
    window.addEventListener('resize', hideTooltip);
  }

  // ---------------------------------------------------------------- connection: snapshot + socket

  async function connect() {
    session.reconnectTimer = null;
    if (!session.snapshotLoaded && !(await loadInitialSnapshot())) {
      scheduleReconnect();
      return;
    }
    openSocket();
  }

  async function loadInitialSnapshot() {
    try {
      const snapshot = await fetchOpenSnapshot();
      replaceOpenSet(snapshot.items, { countChanges: false });
      seedEventList(snapshot.items);
      if (snapshot.lastSeq !== null) state.counters.lastSeq = snapshot.lastSeq;
      session.snapshotLoaded = true;
      if (state.openListTruncated) showNotice(t('notice.truncated', { n: CONFIG.snapshotLimit }), '');
      refreshAfterChange();
      return true;
    } catch (error) {
      console.warn('cityops: could not load open incidents:', error);
      return false;
    }
  }

  async function fetchOpenSnapshot() {
    const response = await fetch(CONFIG.snapshotUrl, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) throw new Error(`GET ${CONFIG.snapshotUrl}: HTTP ${response.status}`);
    const body = await response.json();
    const rawItems = Array.isArray(body?.items) ? body.items : [];
    const items = rawItems.filter(isOpenIncident);
    items.forEach(rememberCategoryNames);
    state.openListTruncated = body?.next_cursor !== undefined && body?.next_cursor !== null;
    return { items, lastSeq: toSeq(body?.last_seq) };
  }

  function openSocket() {
    let socket;
    try {
      socket = new WebSocket(buildSocketUrl());
    } catch (error) {
      console.warn('cityops: could not open the event socket:', error);
      scheduleReconnect();
      return;
    }
    session.socket = socket;
    socket.addEventListener('open', () => onSocketOpen(socket));
    socket.addEventListener('message', (event) => { if (session.socket === socket) handleFrameText(event.data); });
    socket.addEventListener('close', () => onSocketClosed(socket));
    socket.addEventListener('error', () => socket.close());
  }

  function buildSocketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = state.counters.lastSeq === null ? '' : `since=${state.counters.lastSeq}&`;
    return `${scheme}//${location.host}${CONFIG.socketPath}?${since}types=${CONFIG.socketTypes}`;
  }

  function onSocketOpen(socket) {
    if (session.socket !== socket) return;
    session.reconnectDelayMs = CONFIG.reconnectInitialMs;
    setConnection('connected');
    if (!session.boundary.loaded) loadBoundary();
  }

  function onSocketClosed(socket) {
    if (session.socket !== socket) return;
    session.socket = null;
    scheduleReconnect();
  }

  /** Retries with 1 s, 2 s, 4 s … 15 s; the next socket asks for events after the highest seq seen. */
  function scheduleReconnect() {
    if (session.reconnectTimer !== null) return;
    const delayMs = session.reconnectDelayMs;
    session.reconnectDelayMs = Math.min(delayMs * 2, CONFIG.reconnectMaxMs);
    setConnection('reconnecting', delayMs);
    session.reconnectTimer = setTimeout(connect, delayMs);
  }

  function setConnection(connection, retryInMs) {
    state.connection = connection;
    session.retryInMs = retryInMs ?? null;
    renderConnection();
  }

  // ---------------------------------------------------------------- frames

  function handleFrameText(text) {
    const frame = parseFrame(text);
    if (!frame) return;
    if (frame.type === 'resync') {
      requestResync(frame.data);
    } else if (session.resync.running) {
      queueDuringResync(frame);
    } else {
      applyFrame(frame);
    }
  }

  function parseFrame(text) {
    if (typeof text !== 'string') return null;
    try {
      const frame = JSON.parse(text);
      return frame && typeof frame === 'object' && typeof frame.type === 'string' ? frame : null;
    } catch {
      return null;
    }
  }

  /** Applies one sequenced frame unless it is a duplicate (seq not above the highest seen). */
  function applyFrame(frame) {
    const seq = toSeq(frame.seq);
    if (seq !== null) {
      if (state.counters.lastSeq !== null && seq <= state.counters.lastSeq) return;
      state.counters.lastSeq = seq;
    }
    state.counters.eventsReceived += 1;
    const handler = FRAME_HANDLERS.get(frame.type);
    if (handler) handler(frame);
    refreshAfterChange();
  }

  function applyIncidentOpened(frame) {
    const incident = frame.data;
    if (!isOpenIncident(incident)) return;
    rememberCategoryNames(incident);
    const isNew = !state.open.has(incident.id);
    state.open.set(incident.id, incident);
    if (isNew) state.counters.openedSinceLoad += 1;
    drawIncidentDot(incident, { pulse: isNew });
    addEventEntry(entryFromOpened(incident, frame.time));
    if (session.tooltip.incidentId === incident.id) refreshTooltip();
  }

  function applyIncidentCleared(frame) {
    const cleared = frame.data;
    if (!cleared || typeof cleared !== 'object' || cleared.id === undefined || cleared.id === null) return;
    const previous = state.open.get(cleared.id);
    state.open.delete(cleared.id);
    state.counters.clearedSinceLoad += 1;
    fadeOutIncidentDot(cleared.id);
    addEventEntry(entryFromCleared(cleared, previous, frame.time));
    markEntriesCleared(cleared.id);
  }

  // ---------------------------------------------------------------- resync

  /** The server skipped events for this client: refetch the open set, keep the socket. */
  function requestResync(info) {
    state.resyncCount += 1;
    session.resync.requested += 1;
    session.resync.lastInfo = info && typeof info === 'object' ? info : {};
    if (!session.resync.running) runResync();
  }

  function queueDuringResync(frame) {
    const queue = session.resync.queue;
    queue.push(frame);
    if (queue.length > CONFIG.resyncQueueCap) {
      queue.splice(0, queue.length - CONFIG.resyncQueueCap);
      session.resync.requested += 1;
    }
  }

  async function runResync() {
    const resync = session.resync;
    resync.running = true;
    let retryDelayMs = CONFIG.reconnectInitialMs;
    for (;;) {
      const generation = resync.requested;
      let snapshot;
      try {
        snapshot = await fetchOpenSnapshot();
      } catch (error) {
        console.warn('cityops: resync refetch failed, retrying:', error);
        await sleep(retryDelayMs);
        retryDelayMs = Math.min(retryDelayMs * 2, CONFIG.reconnectMaxMs);
        continue;
      }
      if (generation !== resync.requested) continue;
      applyResyncSnapshot(snapshot);
      break;
    }
    resync.running = false;
    showResyncNotice(resync.lastInfo);
  }

  /**
   * The snapshot replaces the open set and the seq position (taken as is, not as a maximum, so a
   * restarted server with a lower seq is followed); queued frames newer than it are then applied.
   */
  function applyResyncSnapshot(snapshot) {
    replaceOpenSet(snapshot.items, { countChanges: true });
    if (snapshot.lastSeq !== null) state.counters.lastSeq = snapshot.lastSeq;
    session.snapshotLoaded = true;
    const queued = session.resync.queue.splice(0);
    queued.forEach(applyFrame);
    refreshAfterChange();
  }

  function showResyncNotice(info) {
    const missed = Number(info?.missed);
    const detail = Number.isFinite(missed) && missed > 0 ? t('notice.missed', { n: missed }) : '';
    showNotice(t('notice.resynced'), detail);
  }

  // ---------------------------------------------------------------- open set

  /**
   * Makes `items` the open set. With countChanges (a resync), incidents that appeared count as opened
   * and get a list row, and those that vanished count as cleared; ones opened and cleared inside the
   * gap cannot be seen and are not counted.
   */
  function replaceOpenSet(items, { countChanges }) {
    const nextIds = new Set(items.map((incident) => incident.id));
    const removedIds = [...state.open.keys()].filter((id) => !nextIds.has(id));
    const added = items.filter((incident) => !state.open.has(incident.id));
    const addedIds = new Set(added.map((incident) => incident.id));

    state.open.clear();
    for (const incident of items) state.open.set(incident.id, incident);

    removedIds.forEach(fadeOutIncidentDot);
    for (const incident of items) drawIncidentDot(incident, { pulse: countChanges && addedIds.has(incident.id) });
    if (!countChanges) return;

    state.counters.openedSinceLoad += added.length;
    state.counters.clearedSinceLoad += removedIds.length;
    sortByOpenedAt(added).reverse().forEach((incident) => addEventEntry(entryFromOpened(incident, null)));
    removedIds.forEach(markEntriesCleared);
  }

  function isOpenIncident(value) {
    return Boolean(value) && typeof value === 'object' && value.id !== undefined && value.id !== null
      && (value.state === undefined || value.state === 'open');
  }

  function rememberCategoryNames(incident) {
    const code = incident?.category_code;
    if (!code || !(incident.category_name_zh || incident.category_name_en)) return;
    session.categoryNames.set(String(code), { zh: asText(incident.category_name_zh), en: asText(incident.category_name_en) });
  }

  // ---------------------------------------------------------------- event list

  function entryFromOpened(incident, frameTime) {
    return {
      key: session.nextEntryKey++,
      type: 'opened',
      incidentId: incident.id,
      time: firstFiniteTime(incident.opened_at, frameTime),
      device_id: incident.device_id,
      kind: incident.kind,
      rule_id: incident.rule_id,
      category_code: incident.category_code,
      value: incident.value,
      unit: incident.unit,
    };
  }

  function entryFromCleared(cleared, previous, frameTime) {
    return {
      key: session.nextEntryKey++,
      type: 'cleared',
      incidentId: cleared.id,
      time: firstFiniteTime(cleared.cleared_at, frameTime),
      device_id: cleared.device_id ?? previous?.device_id,
      kind: cleared.kind ?? previous?.kind,
      rule_id: cleared.rule_id ?? previous?.rule_id,
      category_code: cleared.category_code ?? previous?.category_code,
      value: cleared.value,
      unit: cleared.unit ?? previous?.unit,
    };
  }

  function seedEventList(incidents) {
    state.events = sortByOpenedAt(incidents).slice(0, CONFIG.listCap).map((incident) => entryFromOpened(incident, null));
    renderEventList();
  }

  function addEventEntry(entry) {
    state.events.unshift(entry);
    if (state.events.length > CONFIG.listCap) state.events.length = CONFIG.listCap;
    const row = buildEventRow(entry);
    row.classList.add('is-new');
    dom.eventRows.prepend(row);
    while (dom.eventRows.children.length > CONFIG.listCap) dom.eventRows.lastElementChild.remove();
    dom.listEmpty.hidden = true;
  }

  function renderEventList() {
    dom.eventRows.replaceChildren(...state.events.map(buildEventRow));
    dom.listEmpty.hidden = state.events.length > 0;
  }

  function buildEventRow(entry) {
    const row = document.createElement('tr');
    row.className = `event-row event-${entry.type}`;
    if (entry.type === 'opened' && !state.open.has(entry.incidentId)) row.classList.add('is-superseded');
    session.entryForRow.set(row, entry);
    appendCell(row, 'col-time', formatClock(entry.time));
    appendCell(row, 'col-category', categoryName(entry.category_code, entry.rule_id));
    appendCell(row, 'col-code', asText(entry.category_code));
    appendCell(row, 'col-device', asText(entry.device_id));
    row.append(buildKindCell(entry.kind));
    appendCell(row, 'col-value', formatValue(entry.value, entry.unit));
    row.append(buildStateCell(entry.type));
    return row;
  }

  function appendCell(row, className, text) {
    const cell = document.createElement('td');
    cell.className = className;
    cell.textContent = text;
    cell.title = text;
    row.append(cell);
  }

  function buildKindCell(kind) {
    const cell = document.createElement('td');
    cell.className = 'col-kind';
    cell.append(buildSwatch(kind), document.createTextNode(kindName(kind)));
    return cell;
  }

  function buildStateCell(type) {
    const cell = document.createElement('td');
    cell.className = 'col-state';
    const pill = document.createElement('span');
    pill.className = `pill pill-${type}`;
    pill.textContent = t(type === 'cleared' ? 'state.cleared' : 'state.open');
    cell.append(pill);
    return cell;
  }

  /** Dims the "opened" rows of an incident once it has cleared. */
  function markEntriesCleared(incidentId) {
    for (const row of dom.eventRows.children) {
      const entry = session.entryForRow.get(row);
      if (entry && entry.type === 'opened' && entry.incidentId === incidentId) row.classList.add('is-superseded');
    }
  }

  function onEventRowClick(event) {
    const row = event.target.closest('tr');
    const entry = row && session.entryForRow.get(row);
    if (entry && state.open.has(entry.incidentId)) showTooltip(entry.incidentId, { pinned: true });
  }

  // ---------------------------------------------------------------- map

  /** Equirectangular projection of a bbox, x scaled by cos(mid latitude) so the district is not stretched. */
  function makeProjection(bbox) {
    const midLatRadians = ((bbox.minLat + bbox.maxLat) / 2) * Math.PI / 180;
    const xScale = Math.cos(midLatRadians) * CONFIG.mapUnitsPerDegree;
    const yScale = CONFIG.mapUnitsPerDegree;
    return {
      bbox,
      width: (bbox.maxLon - bbox.minLon) * xScale,
      height: (bbox.maxLat - bbox.minLat) * yScale,
      unitsPerKm: yScale / 111.32,
      project: (lon, lat) => [(lon - bbox.minLon) * xScale, (bbox.maxLat - lat) * yScale],
    };
  }

  function setUpMapLayers() {
    for (const name of ['grid', 'boundary', 'scale', 'dots']) {
      const layer = svgElement('g', { class: `map-${name}` });
      dom.map.append(layer);
      dom[`map${name[0].toUpperCase()}${name.slice(1)}`] = layer;
    }
  }

  function applyProjection() {
    const { width, height } = session.projection;
    const pad = CONFIG.mapPadding;
    dom.map.setAttribute('viewBox', `${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`);
    drawGrid();
    drawScaleBar();
    for (const incident of state.open.values()) drawIncidentDot(incident, { pulse: false });
  }

  async function loadBoundary() {
    if (session.boundary.loading || session.boundary.loaded) return;
    session.boundary.loading = true;
    try {
      const response = await fetch(CONFIG.boundaryUrl, { headers: { Accept: 'application/geo+json, application/json' } });
      if (!response.ok) throw new Error(`GET ${CONFIG.boundaryUrl}: HTTP ${response.status}`);
      const rings = polygonRings(await response.json());
      if (rings.length === 0) throw new Error('boundary file has no polygon');
      session.projection = makeProjection(bboxOfRings(rings));
      applyProjection();
      drawBoundary(rings);
      session.boundary.loaded = true;
      session.boundary.failed = false;
    } catch (error) {
      console.warn('cityops: could not load the district boundary:', error);
      session.boundary.failed = true;
    } finally {
      session.boundary.loading = false;
      renderMapHint();
    }
  }

  /** The outer and inner rings of every Polygon / MultiPolygon in a FeatureCollection, Feature or geometry. */
  function polygonRings(geojson) {
    const features = geojson?.type === 'FeatureCollection' ? geojson.features ?? []
      : geojson?.type === 'Feature' ? [geojson] : [{ geometry: geojson }];
    const rings = [];
    for (const feature of features) {
      const geometry = feature?.geometry;
      if (geometry?.type === 'Polygon') rings.push(...geometry.coordinates);
      if (geometry?.type === 'MultiPolygon') geometry.coordinates.forEach((polygon) => rings.push(...polygon));
    }
    return rings.filter((ring) => Array.isArray(ring) && ring.length >= 3);
  }

  function bboxOfRings(rings) {
    const bbox = { minLon: Infinity, maxLon: -Infinity, minLat: Infinity, maxLat: -Infinity };
    for (const [lon, lat] of rings.flat()) {
      bbox.minLon = Math.min(bbox.minLon, lon);
      bbox.maxLon = Math.max(bbox.maxLon, lon);
      bbox.minLat = Math.min(bbox.minLat, lat);
      bbox.maxLat = Math.max(bbox.maxLat, lat);
    }
    return bbox;
  }

  function drawBoundary(rings) {
    const path = rings.map((ring) => {
      const points = ring.map(([lon, lat]) => session.projection.project(lon, lat).map(round1).join(','));
      return `M${points.join('L')}Z`;
    }).join('');
    const glow = svgElement('path', { d: path, class: 'boundary-glow' });
    const outline = svgElement('path', { d: path, class: 'boundary', 'fill-rule': 'evenodd' });
    dom.mapBoundary.replaceChildren(glow, outline);
  }

  function drawGrid() {
    const { bbox, width, height, project } = session.projection;
    const pad = CONFIG.mapPadding;
    const step = CONFIG.gridStepDegrees;
    const lines = [];
    for (let lon = Math.ceil(bbox.minLon / step) * step; lon <= bbox.maxLon; lon += step) {
      const [x] = project(lon, bbox.maxLat);
      lines.push(svgElement('line', { x1: round1(x), y1: -pad, x2: round1(x), y2: height + pad }));
    }
    for (let lat = Math.ceil(bbox.minLat / step) * step; lat <= bbox.maxLat; lat += step) {
      const [, y] = project(bbox.minLon, lat);
      lines.push(svgElement('line', { x1: -pad, y1: round1(y), x2: width + pad, y2: round1(y) }));
    }
    dom.mapGrid.replaceChildren(...lines);
  }

  function drawScaleBar() {
    const { height, unitsPerKm } = session.projection;
    const y = height - 6;
    const bar = svgElement('path', { d: `M0,${y - 8}V${y}H${round1(unitsPerKm)}V${y - 8}`, class: 'scale-bar' });
    const label = svgElement('text', { x: 0, y: y - 14, class: 'scale-label' });
    label.textContent = t('map.scale');
    dom.mapScale.replaceChildren(bar, label);
  }

  function projectIncident(incident) {
    const lon = Number(incident.lon);
    const lat = Number(incident.lat);
    if (incident.lon === null || incident.lat === null || !Number.isFinite(lon) || !Number.isFinite(lat)) return null;
    return session.projection.project(lon, lat);
  }

  function drawIncidentDot(incident, { pulse }) {
    const key = String(incident.id);
    const point = projectIncident(incident);
    let dot = session.dots.get(key);
    if (!point) {
      if (dot) fadeOutIncidentDot(incident.id);
      return;
    }
    if (!dot) {
      dot = createDot(incident.id);
      session.dots.set(key, dot);
      dom.mapDots.append(dot);
    }
    const color = kindColor(incident.kind);
    dot.setAttribute('transform', `translate(${round1(point[0])} ${round1(point[1])})`);
    dot.querySelector('.dot-core').setAttribute('fill', color);
    if (pulse) pulseDot(dot, color);
  }

  function createDot(incidentId) {
    const dot = svgElement('g', { class: 'dot' });
    dot.append(svgElement('circle', { class: 'dot-hit', r: 20 }), svgElement('circle', { class: 'dot-core', r: 10 }));
    dot.addEventListener('pointerenter', () => { if (!session.tooltip.pinned) showTooltip(incidentId, { pinned: false }); });
    dot.addEventListener('pointerleave', () => { if (!session.tooltip.pinned) hideTooltip(); });
    dot.addEventListener('click', (event) => {
      event.stopPropagation();
      const alreadyPinned = session.tooltip.pinned && session.tooltip.incidentId === incidentId;
      if (alreadyPinned) hideTooltip(); else showTooltip(incidentId, { pinned: true });
    });
    return dot;
  }

  function pulseDot(dot, color) {
    const ring = svgElement('circle', { class: 'dot-pulse', r: 10, stroke: color });
    dot.prepend(ring);
    dot.classList.add('is-new');
    setTimeout(() => { ring.remove(); dot.classList.remove('is-new'); }, CONFIG.dotPulseMs);
  }

  function fadeOutIncidentDot(incidentId) {
    const key = String(incidentId);
    const dot = session.dots.get(key);
    if (!dot) return;
    session.dots.delete(key);
    dot.classList.add('is-clearing');
    setTimeout(() => dot.remove(), CONFIG.dotFadeMs);
    if (session.tooltip.incidentId === incidentId) hideTooltip();
  }

  function onMapBackgroundClick() {
    if (session.tooltip.pinned) hideTooltip();
  }

  function renderMapHint() {
    dom.mapHint.textContent = session.boundary.failed ? t('map.boundaryMissing') : '';
    dom.mapEmpty.hidden = !(session.snapshotLoaded && state.open.size === 0);
  }

  // ---------------------------------------------------------------- tooltip

  function showTooltip(incidentId, { pinned }) {
    const dot = session.dots.get(String(incidentId));
    if (!state.open.has(incidentId) || !dot) {
      hideTooltip();
      return;
    }
    setSelectedDot(dot);
    session.tooltip = { incidentId, pinned };
    dom.tooltip.classList.toggle('is-pinned', pinned);
    refreshTooltip();
  }

  function refreshTooltip() {
    const { incidentId } = session.tooltip;
    const incident = state.open.get(incidentId);
    const dot = session.dots.get(String(incidentId));
    if (incident === undefined || !dot) {
      hideTooltip();
      return;
    }
    fillTooltip(incident);
    dom.tooltip.hidden = false;
    positionTooltip(dot);
  }

  function hideTooltip() {
    session.tooltip = { incidentId: null, pinned: false };
    dom.tooltip.hidden = true;
    setSelectedDot(null);
  }

  function setSelectedDot(dot) {
    for (const selected of dom.mapDots.querySelectorAll('.dot.is-selected')) selected.classList.remove('is-selected');
    if (dot) dot.classList.add('is-selected');
  }

  function fillTooltip(incident) {
    const title = document.createElement('div');
    title.className = 'tooltip-title';
    title.append(buildSwatch(incident.kind), document.createTextNode(categoryName(incident.category_code, incident.rule_id)));
    const details = document.createElement('dl');
    const rows = [
      ['tooltip.code', asText(incident.category_code)],
      ['tooltip.device', asText(incident.device_id)],
      ['tooltip.kind', kindName(incident.kind)],
      ['tooltip.value', formatValue(incident.value, incident.unit)],
      ['tooltip.condition', asText(incident.condition)],
      ['tooltip.openedAt', formatDateTime(incident.opened_at)],
      ['tooltip.incident', `#${asText(incident.id)}`],
    ];
    for (const [labelKey, value] of rows) {
      if (!value) continue;
      const term = document.createElement('dt');
      term.textContent = t(labelKey);
      const definition = document.createElement('dd');
      definition.textContent = value;
      details.append(term, definition);
    }
    dom.tooltip.replaceChildren(title, details);
  }

  /** Places the tooltip beside the dot, flipped and clamped to stay inside the map. */
  function positionTooltip(dot) {
    const wrap = dom.mapWrap.getBoundingClientRect();
    const anchor = dot.querySelector('.dot-core').getBoundingClientRect();
    const tip = dom.tooltip.getBoundingClientRect();
    const gap = 12;
    let left = anchor.right - wrap.left + gap;
    if (left + tip.width > wrap.width) left = anchor.left - wrap.left - gap - tip.width;
    let top = anchor.top - wrap.top + anchor.height / 2 - tip.height / 2;
    left = clamp(left, 4, Math.max(4, wrap.width - tip.width - 4));
    top = clamp(top, 4, Math.max(4, wrap.height - tip.height - 4));
    dom.tooltip.style.left = `${Math.round(left)}px`;
    dom.tooltip.style.top = `${Math.round(top)}px`;
  }

  // ---------------------------------------------------------------- summaries: KPIs, legend, categories

  function refreshAfterChange() {
    state.counters.openNow = state.open.size;
    renderKpis();
    renderMapHint();
    scheduleSummaryRender();
  }

  function renderKpis() {
    const counters = state.counters;
    const openNow = String(state.open.size);
    dom.kpiOpenNow.textContent = session.snapshotLoaded ? (state.openListTruncated ? `${openNow}+` : openNow) : '—';
    dom.kpiOpened.textContent = String(counters.openedSinceLoad);
    dom.kpiCleared.textContent = String(counters.clearedSinceLoad);
    dom.kpiEvents.textContent = String(counters.eventsReceived);
    dom.kpiLastSeq.textContent = counters.lastSeq === null ? '—' : String(counters.lastSeq);
  }

  /** Legend and category counts walk the whole open set, so they are redrawn at most once a frame. */
  function scheduleSummaryRender() {
    if (session.summaryFrame !== null) return;
    session.summaryFrame = requestAnimationFrame(() => {
      session.summaryFrame = null;
      renderLegend();
      renderTopCategories();
    });
  }

  function renderLegend() {
    const counts = countBy(state.open.values(), (incident) => asText(incident.kind));
    const kinds = [...KNOWN_KINDS, ...[...counts.keys()].filter((kind) => !KNOWN_KINDS.includes(kind)).sort()];
    const items = kinds.map((kind) => {
      const item = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'legend-name';
      name.textContent = kindName(kind);
      const count = document.createElement('span');
      count.className = 'legend-count';
      count.textContent = String(counts.get(kind) ?? 0);
      item.classList.toggle('is-zero', !counts.get(kind));
      item.append(buildSwatch(kind), name, count);
      return item;
    });
    dom.legend.replaceChildren(...items);
  }

  function renderTopCategories() {
    const counts = countBy(state.open.values(), (incident) => asText(incident.category_code));
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const top = ranked.slice(0, CONFIG.topCategoryCount);
    const largest = top.length > 0 ? top[0][1] : 1;
    const items = top.map(([code, count]) => buildCategoryItem(code, count, largest));
    if (items.length === 0) {
      const none = document.createElement('li');
      none.className = 'categories-none';
      none.textContent = t('categories.none');
      items.push(none);
    }
    dom.topCategories.replaceChildren(...items);
  }

  function buildCategoryItem(code, count, largest) {
    const item = document.createElement('li');
    item.style.setProperty('--share', String(count / largest));
    const name = document.createElement('span');
    name.className = 'category-name';
    name.textContent = categoryName(code, code);
    name.title = `${name.textContent} (${code})`;
    const value = document.createElement('span');
    value.className = 'category-count';
    value.textContent = String(count);
    item.append(name, value);
    return item;
  }

  function renderConnection() {
    dom.statusBadge.className = `status status-${state.connection}`;
    dom.statusText.textContent = t(`status.${state.connection}`);
    const retryInMs = session.retryInMs;
    dom.statusBadge.title = state.connection === 'reconnecting' && retryInMs
      ? t('status.retryIn', { s: Math.round(retryInMs / 1000) }) : '';
  }

  // ---------------------------------------------------------------- notice, clock

  function showNotice(title, detail) {
    const heading = document.createElement('strong');
    heading.textContent = title;
    dom.notice.replaceChildren(heading);
    if (detail) {
      const more = document.createElement('span');
      more.textContent = detail;
      dom.notice.append(more);
    }
    dom.notice.hidden = false;
    clearTimeout(session.noticeTimer);
    session.noticeTimer = setTimeout(() => { dom.notice.hidden = true; }, CONFIG.noticeMs);
  }

  function startClock() {
    const tick = () => {
      const now = Date.now();
      dom.clock.textContent = formatDateTime(now);
      dom.clock.dateTime = new Date(now).toISOString();
    };
    tick();
    setInterval(tick, 1000);
  }

  // ---------------------------------------------------------------- language

  function t(key, params) {
    const text = I18N[state.language]?.[key] ?? I18N.zh[key] ?? key;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
  }

  function loadLanguage() {
    try {
      const saved = localStorage.getItem(CONFIG.languageStorageKey);
      if (saved === 'zh' || saved === 'en') return saved;
    } catch {
      // Storage may be unavailable (privacy mode, file://): fall back to the default.
    }
    return 'zh';
  }

  function saveLanguage(language) {
    try {
      localStorage.setItem(CONFIG.languageStorageKey, language);
    } catch {
      // Not remembered this time; the page still switches.
    }
  }

  function toggleLanguage() {
    state.language = state.language === 'zh' ? 'en' : 'zh';
    saveLanguage(state.language);
    applyLanguage();
  }

  function applyLanguage() {
    document.documentElement.lang = state.language === 'zh' ? 'zh-CN' : 'en';
    document.title = `${t('page.title')} · cityops`;
    for (const element of document.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
    for (const option of dom.langToggle.querySelectorAll('[data-lang]')) {
      option.classList.toggle('is-active', option.dataset.lang === state.language);
    }
    dom.langToggle.title = t('lang.switch');
    dom.listHint.textContent = t('list.hint', { n: CONFIG.listCap });
    renderConnection();
    renderKpis();
    renderLegend();
    renderTopCategories();
    renderEventList();
    renderMapHint();
    drawScaleBar();
    if (session.tooltip.incidentId !== null) refreshTooltip();
  }

  // ---------------------------------------------------------------- formatting and small helpers

  function categoryName(code, fallback) {
    const names = session.categoryNames.get(asText(code));
    const name = names && (names[state.language] || names.zh || names.en);
    return name || asText(fallback) || asText(code) || '—';
  }

  function kindName(kind) {
    const key = `kind.${kind}`;
    if (KNOWN_KINDS.includes(kind)) return t(key);
    return asText(kind) || t('kind.other');
  }

  function kindColor(kind) {
    return Object.prototype.hasOwnProperty.call(KIND_COLORS, kind) ? KIND_COLORS[kind] : OTHER_KIND_COLOR;
  }

  function buildSwatch(kind) {
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.backgroundColor = kindColor(kind);
    return swatch;
  }

  function formatValue(value, unit) {
    let text;
    if (typeof value === 'number') text = Number.isFinite(value) ? String(Math.round(value * 100) / 100) : String(value);
    else if (typeof value === 'boolean') text = t(value ? 'value.true' : 'value.false');
    else if (typeof value === 'string') text = value;
    else if (value === null || value === undefined) text = '—';
    else text = JSON.stringify(value);
    return unit ? `${text} ${unit}` : text;
  }

  function formatClock(ms) {
    if (!Number.isFinite(ms)) return '--:--:--';
    const date = new Date(ms);
    return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  }

  function formatDateTime(ms) {
    if (!Number.isFinite(ms)) return '';
    const date = new Date(ms);
    return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${formatClock(ms)}`;
  }

  /** A Unix-ms number if there is one, else the frame's RFC 3339 time, else now. */
  function firstFiniteTime(unixMillis, rfc3339) {
    if (typeof unixMillis === 'number' && Number.isFinite(unixMillis)) return unixMillis;
    const parsed = typeof rfc3339 === 'string' ? Date.parse(rfc3339) : NaN;
    return Number.isFinite(parsed) ? parsed : Date.now();
  }

  function sortByOpenedAt(incidents) {
    const openedAt = (incident) => (Number.isFinite(incident.opened_at) ? incident.opened_at : 0);
    return [...incidents].sort((a, b) => openedAt(b) - openedAt(a));
  }

  function countBy(values, keyOf) {
    const counts = new Map();
    for (const value of values) {
      const key = keyOf(value);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  function toSeq(value) {
    return Number.isSafeInteger(value) && value >= 0 ? value : null;
  }

  function svgElement(name, attributes) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [attribute, value] of Object.entries(attributes)) element.setAttribute(attribute, String(value));
    return element;
  }

  function asText(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function pad2(number) {
    return String(number).padStart(2, '0');
  }

  function round1(number) {
    return Math.round(number * 10) / 10;
  }

  function clamp(number, low, high) {
    return Math.min(Math.max(number, low), high);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
