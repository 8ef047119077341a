// The map of a collection (issue 42): every item a point, like near like, drawn by
// regl-scatterplot (WebGL). Points come as binary buffers a viewport at a time (/api/map/points);
// thumbnails replace points as you zoom in; a search lights up its hits; a lasso selects points
// for feedback, a caption or an export. The view and the search live in the URL.
// Served by `sashie serve` at /map, or from a folder `sashie map --export` wrote (static: the
// page reads its points from map-data.js beside it, shows thumbnails from thumbs/, and has no
// search, feedback or captions).
"use strict";
(() => {
const $ = (id) => document.getElementById(id);
const STATIC = document.documentElement.dataset.static === "1";
const FIRST_VIEW = 200000;  // points asked for first: an even sample of a larger map
const MORE = 50000;         // points asked for a closer view, when the map holds more
const THUMBS_BELOW = 60;    // points in view under which they are shown as thumbnails
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
const RAMP = ["#d9d4c7", "#f3d9a4", "#f0b35e", "#e07b39", "#b5462c", "#6f1d1b"];
const state = { items: [], x: [], y: [], books: [], years: [], clusters: [], classes: [], classNames: [], byItem: new Map(),
  total: 0, scores: new Map(), query: null, selected: [], clusterInfo: [], view: null, asked: new Set() };
window.sashieMap = state;  // for the browser tests and the curious

const plot = createScatterplot({
  canvas: $("canvas"), width: "auto", height: "auto", pointSize: 4, pointSizeSelected: 7,
  pointOutlineWidth: 2, lassoColor: "#b5462c", lassoMinDelay: 10, lassoMinDist: 2,
  backgroundColor: "#fffdf8", colorBy: "valueA", pointColor: PALETTE, opacity: 0.85,
  showReticle: false, deselectOnEscape: true, actionKeyMap: { shift: "lasso" },
});
state.plot = plot;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}
async function api(path, options = {}) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const json = response.headers.get("content-type")?.includes("json");
  const body = json ? await response.json() : await response.arrayBuffer();
  if (!response.ok) throw new Error((json && body.error) || `${response.status} ${response.statusText}`);
  return body;
}
const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
const thumb = (item) => STATIC ? `thumbs/${item}.jpg` : `/api/items/${item}/thumbnail`;
// a folder written by --export holds the thumbnails of its first points only
const hasThumb = (i) => !STATIC || i < (window.SASHIE_MAP.meta.thumbnails || 0);

// --- points ------------------------------------------------------------------------------
function readPoints(buffer) {  // the layout /api/map/points documents
  const head = new Uint32Array(buffer, 0, 4);
  if (head[0] !== 0x50414d53) throw new Error("not a map's points");
  const n = head[1];
  let at = 16;
  const take = (Type, count) => { const a = new Type(buffer, at, count); at += count * Type.BYTES_PER_ELEMENT; return a; };
  const xy = take(Float32Array, 2 * n), items = take(Uint32Array, n), books = take(Uint32Array, n);
  const years = take(Float32Array, n), clusters = take(Uint16Array, n), classes = take(Uint16Array, n);
  return { n, total: head[2], xy, items, books, years, clusters, classes };
}
function addPoints(got) {
  let added = 0;
  for (let i = 0; i < got.n; i++) {
    const item = got.items[i];
    if (state.byItem.has(item)) continue;
    state.byItem.set(item, state.items.length);
    state.items.push(item); state.x.push(got.xy[2 * i]); state.y.push(got.xy[2 * i + 1]);
    state.books.push(got.books[i]); state.years.push(got.years[i]); state.clusters.push(got.clusters[i]);
    state.classes.push(got.classes[i]);
    added++;
  }
  state.total = got.total;
  return added;
}
function staticPoints() {
  const text = atob(window.SASHIE_MAP.points), bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return readPoints(bytes.buffer);
}
async function fetchPoints(box, limit) {
  if (STATIC) return staticPoints();
  const q = new URLSearchParams({ limit: String(limit) });
  if (box) for (const [k, v] of Object.entries(box)) q.set(k, v.toFixed(5));
  return readPoints(await api(`/api/map/points?${q}`));
}

// what each point's colour encodes: a category (valueA) or a 0-1 value (valueB)
function encoding() {
  const by = $("colour").value, n = state.items.length;
  const z = new Float32Array(n), w = new Float32Array(n);
  if (by === "cluster") for (let i = 0; i < n; i++) z[i] = state.clusters[i] % PALETTE.length;
  if (by === "book") for (let i = 0; i < n; i++) z[i] = state.books[i] % PALETTE.length;
  if (by === "label") for (let i = 0; i < n; i++) z[i] = state.classes[i] ? 1 + (state.classes[i] - 1) % (PALETTE.length - 1) : 0;
  if (by === "year") {
    let lo = Infinity, hi = -Infinity;
    for (const y of state.years) if (!Number.isNaN(y)) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
    for (let i = 0; i < n; i++) w[i] = Number.isNaN(state.years[i]) ? 0 : 0.2 + 0.8 * (state.years[i] - lo) / Math.max(1, hi - lo);
  }
  if (by === "score") {
    const scores = [...state.scores.values()];  // at most a page of results
    const top = Math.max(...scores, 1e-9), low = Math.min(...scores, 0);
    for (const [item, s] of state.scores) { const i = state.byItem.get(item); if (i !== undefined) w[i] = 0.25 + 0.75 * (s - low) / Math.max(1e-9, top - low); }
  }
  return { x: Float32Array.from(state.x), y: Float32Array.from(state.y), z, w, continuous: by === "year" || by === "score" };
}
async function redraw() {
  const e = encoding();
  await plot.set(e.continuous ? { colorBy: "valueB", pointColor: RAMP } : { colorBy: "valueA", pointColor: PALETTE });
  await plot.draw({ x: e.x, y: e.y, z: e.z, w: e.w }, { zDataType: "categorical", wDataType: "continuous", preventFilterReset: true });
  const hits = [...state.scores.keys()].map((item) => state.byItem.get(item)).filter((i) => i !== undefined);
  if (state.selected.length) plot.select(state.selected.map((item) => state.byItem.get(item)).filter((i) => i !== undefined), { preventEvent: true });
  state.highlighted = hits.length;
  showOverlays();
}

// --- the view: thumbnails up close, cluster names from afar, more points where they thin out
function viewBox() {  // the data box the camera shows (see regl-scatterplot's getScreenPosition)
  const v = state.view || plot.get("cameraView");
  const canvas = $("canvas"), aspect = canvas.clientWidth / Math.max(1, canvas.clientHeight);
  const s = v[0], tx = v[12], ty = v[13];
  return { x0: (-aspect - tx) / s, x1: (aspect - tx) / s, y0: (-1 - ty) / s, y1: (1 - ty) / s, zoom: s };
}
function inView(box, most) {
  const found = [];
  for (let i = 0; i < state.items.length && found.length < most; i++) {
    const x = state.x[i], y = state.y[i];
    if (x >= box.x0 && x <= box.x1 && y >= box.y0 && y <= box.y1) found.push(i);
  }
  return found;
}
function showOverlays() {
  const box = viewBox();
  const shown = inView(box, THUMBS_BELOW + 1);
  const thumbs = $("thumbs"), labels = $("labels");
  thumbs.replaceChildren(); labels.replaceChildren();
  state.thumbnails = 0;
  if (shown.length <= THUMBS_BELOW) {
    for (const i of shown) {
      const at = plot.getScreenPosition(i);
      if (!at || !hasThumb(i)) continue;
      const img = document.createElement("img");
      img.src = thumb(state.items[i]); img.alt = `item ${state.items[i]}`; img.loading = "lazy";
      img.onerror = () => img.remove();
      img.style.left = `${at[0]}px`; img.style.top = `${at[1]}px`;
      thumbs.append(img);
      state.thumbnails++;
    }
  } else {
    const canvas = $("canvas"), aspect = canvas.clientWidth / Math.max(1, canvas.clientHeight);
    for (const c of state.clusterInfo) {
      if (c.x < box.x0 || c.x > box.x1 || c.y < box.y0 || c.y > box.y1 || !c.items) continue;
      const v = state.view || plot.get("cameraView");
      const px = ((v[0] * c.x + v[12]) / aspect + 1) / 2 * canvas.clientWidth;
      const py = (0.5 - (v[0] * c.y + v[13]) / 2) * canvas.clientHeight;
      const span = document.createElement("span");
      span.textContent = c.label || c.words.join(", ");
      span.style.left = `${px}px`; span.style.top = `${py}px`;
      labels.append(span);
    }
  }
}
let settling = null;
plot.subscribe("view", (event) => {
  state.view = event.view;
  clearTimeout(settling);
  settling = setTimeout(settled, 150);
});
async function settled() {
  showOverlays();
  remember();
  if (STATIC || state.items.length >= state.total) return;
  const box = viewBox();
  const key = [box.x0, box.y0, box.x1, box.y1].map((v) => v.toFixed(2)).join(",");
  if (state.asked.has(key) || box.zoom < 2) return;
  state.asked.add(key);
  const got = await fetchPoints({ x0: box.x0, y0: box.y0, x1: box.x1, y1: box.y1 }, MORE);
  if (addPoints(got)) await redraw();
}

// --- hover and click ---------------------------------------------------------------------
plot.subscribe("pointOver", (i) => {
  const item = state.items[i], at = plot.getScreenPosition(i), hover = $("hover");
  if (!at) return;
  const img = document.createElement("img");
  img.alt = `item ${item}`;
  if (hasThumb(i)) img.src = thumb(item); else img.hidden = true;
  const line = document.createElement("div");
  const year = state.years[i];
  const label = state.classes[i] ? ` · ${state.classNames[state.classes[i] - 1] || ""}` : "";
  line.textContent = `item ${item}${label}${state.books[i] ? ` · book ${state.books[i]}` : ""}${Number.isNaN(year) ? "" : ` · ${year}`}`;
  if (state.scores.has(item)) line.textContent += ` · score ${state.scores.get(item).toFixed(3)}`;
  hover.replaceChildren(img, line);
  hover.style.left = `${Math.min(at[0] + 12, $("stage").clientWidth - 230)}px`;
  hover.style.top = `${Math.max(at[1] - 100, 0)}px`;
  hover.hidden = false;
});
plot.subscribe("pointOut", () => { $("hover").hidden = true; });

// --- search: its hits light up -------------------------------------------------------------
async function showHits(page, what) {
  state.query = page.query;
  state.scores = new Map(page.results.map((r) => [r.item, r.score]));
  if ($("colour").value !== "score") $("colour").value = "score";
  await redraw();
  status(`${what}: ${page.results.length} hits, ${state.highlighted} of them among the ${state.items.length.toLocaleString()} points drawn`);
}
async function search(text) {
  if (STATIC) return;
  const form = new FormData();
  form.append("text", text); form.append("limit", "200");
  try { await showHits(await api("/api/search", { method: "POST", body: form }), `“${text}”`); remember(); }
  catch (err) { status(err.message, true); }
}
$("search").onsubmit = (e) => { e.preventDefault(); const t = $("text").value.trim(); if (t) search(t); };
$("colour").onchange = () => { redraw(); remember(); };

// --- the lasso and what a selection becomes -------------------------------------------------
$("lasso").onclick = () => {
  const on = $("lasso").getAttribute("aria-pressed") !== "true";
  $("lasso").setAttribute("aria-pressed", String(on));
  plot.set({ mouseMode: on ? "lasso" : "panZoom" });
};
plot.subscribe("select", ({ points }) => {
  state.selected = points.map((i) => state.items[i]);
  showSelection();
});
plot.subscribe("deselect", () => { state.selected = []; showSelection(); });
function showSelection() {
  const n = state.selected.length;
  $("selbar").hidden = n === 0;
  $("selcount").textContent = `${n.toLocaleString()} selected`;
  $("insearch").href = `/?items=${state.selected.slice(0, 8).join(",")}`;
}
async function judge(relevant) {
  if (STATIC) return;
  const items = state.selected.slice(0, 1000);
  try {
    let page;
    if (state.query) {
      page = await post("/api/feedback", { query: state.query, relevant: relevant ? items : [],
        irrelevant: relevant ? [] : items, limit: 200 });
    } else if (relevant) {  // no search yet: the selection is its examples
      const form = new FormData();
      form.append("items", items.slice(0, 64).join(",")); form.append("limit", "200");
      page = await api("/api/search", { method: "POST", body: form });
    } else { status("Search first: “not relevant” refines a search.", true); return; }
    await showHits(page, relevant ? "refined by the selection" : "refined without the selection");
  } catch (err) { status(err.message, true); }
}
$("relevant").onclick = () => judge(true);
$("irrelevant").onclick = () => judge(false);
$("annotate").onclick = async () => {
  const caption = $("caption").value.trim();
  if (!caption) { status("Type a caption first.", true); return; }
  try {
    const done = await post("/api/annotations", { items: state.selected.slice(0, 10000), caption });
    status(`captioned ${state.selected.length} items “${caption}” (${done.annotations} annotations in the library)`);
  } catch (err) { status(err.message, true); }
};
$("export").onclick = async () => {
  try {
    const page = await post("/api/iiif/annotations", { items: state.selected.slice(0, 1000), title: "sashie map selection" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(page, null, 2)], { type: "application/ld+json" }));
    link.download = "sashie-map-selection.json"; link.click();
    status(`saved ${page.items.length} regions as a IIIF AnnotationPage (items not from IIIF are left out)`);
  } catch (err) { status(err.message, true); }
};
$("clear").onclick = () => plot.deselect();

// --- the URL holds the view, the colouring and the search -----------------------------------
function remember() {
  const q = new URLSearchParams();
  const text = $("text").value.trim();
  if (text) q.set("q", text);
  if ($("colour").value !== "cluster") q.set("colour", $("colour").value);
  const v = state.view;
  if (v) q.set("view", [v[0], v[12], v[13]].map((n) => n.toFixed(4)).join(","));
  history.replaceState(null, "", `${location.pathname}${q.toString() ? `?${q}` : ""}`);
}
function restoreView(params) {  // the URL's view, or the whole map (a narrow screen: its width)
  let view = (params.get("view") || "").split(",").map(Number);
  if (view.length !== 3 || !view.every(Number.isFinite) || view[0] <= 0) {
    const canvas = $("canvas");
    view = [Math.min(1, canvas.clientWidth / Math.max(1, canvas.clientHeight)), 0, 0];
  }
  const v = new Float32Array(16); v[0] = v[5] = view[0]; v[10] = v[15] = 1; v[12] = view[1]; v[13] = view[2];
  plot.view(v);
  state.view = v;
}

async function start() {
  try {
    const meta = STATIC ? window.SASHIE_MAP.meta : await api("/api/map");
    if (!meta.map) {
      const note = document.createElement("p");
      note.id = "empty";
      note.textContent = "This library has no map yet. Draw it with `sashie map LIB`, or: ";
      const b = document.createElement("button");
      b.textContent = "Draw the map"; b.className = "primary writes";
      b.onclick = () => drawMap(b);
      note.append(b);
      $("stage").replaceChildren(note);
      return;
    }
    state.clusterInfo = meta.clusters;
    state.classNames = meta.classes || [];
    if (!state.classNames.length) $("colour").querySelector("option[value=label]").remove();
    addPoints(await fetchPoints(null, FIRST_VIEW));
    const params = new URLSearchParams(location.search);
    const colour = params.get("colour");
    if (["cluster", "label", "book", "year", "score"].includes(colour) && $("colour").querySelector(`option[value=${colour}]`)) $("colour").value = colour;
    await redraw();
    restoreView(params);
    status(`${state.items.length.toLocaleString()} of ${state.total.toLocaleString()} items drawn (${meta.map.model}, ${meta.map.version}); zoom in for thumbnails, Shift-drag or Lasso to select`);
    const q = (params.get("q") || "").slice(0, 500);
    if (q) { $("text").value = q; await search(q); }
    state.ready = true;
  } catch (err) { status(err.message, true); }
}
async function drawMap(button) {
  button.disabled = true;
  try {
    await post("/api/map/draw", {});
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const meta = await api("/api/map");
      const job = meta.job;
      if (job.state === "failed") throw new Error(job.error);
      if (job.state === "done" && meta.map) { location.reload(); return; }
      status(`drawing the map: ${job.stage || "starting"}${job.total ? ` ${job.done}/${job.total}` : ""}`);
    }
  } catch (err) { status(err.message, true); button.disabled = false; }
}
if (STATIC) {  // no server: nothing to search, judge or caption
  for (const id of ["search", "relevant", "irrelevant", "caption", "annotate", "export", "insearch"]) $(id).hidden = true;
  $("colour").querySelector("option[value=score]").remove();
} else {
  fetch("/api/info", { credentials: "same-origin" }).then((r) => r.ok ? r.json() : {}).then((info) => {
    if (info.read_only) for (const el of document.querySelectorAll(".writes")) el.hidden = true;
  }).catch(() => {});
}
start();
})();
