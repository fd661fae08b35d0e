// The GeoMag demo page: a client of the HTTP API (/health, /v1/examples, /v1/parse), nothing more.
// No build step, no framework: the page must work from a fresh `geomag serve` with no network.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: null, name: "", urls: [] };
// one colour per phrase, on the map and on the answer's chips
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#469990", "#9a6324"];
const view = { map: null, masks: null, maskLayers: [], bounds: null };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// --- choosing an image ---------------------------------------------------------------------------
function useImage(blob, name) {
  state.image = blob;
  state.name = name;
  $("chosen").textContent = `${name} (${(blob.size / 1024).toFixed(0)} KB)`;
  const preview = $("preview");
  if (/\.(png|jpe?g)$/i.test(name) || /^image\/(png|jpeg)$/.test(blob.type)) {
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
  } else {
    preview.hidden = true; // browsers do not show TIFF: the overlay shows it after parsing
    $("chosen").textContent += " · shown after parsing";
  }
}

function setUpDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) useImage(file, file.name);
  });
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const kind of ["dragleave", "drop"]) {
    drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer.files[0];
    if (file) useImage(file, file.name);
  });
}

async function loadExamples() {
  const response = await fetch("/v1/examples");
  if (!response.ok) return;
  const examples = await response.json();
  if (!examples.length) return;
  const box = $("examples");
  for (const example of examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = example.name;
    button.addEventListener("click", async () => {
      const blob = await (await fetch(example.url)).blob();
      useImage(blob, example.name);
    });
    box.appendChild(button);
  }
  box.hidden = false;
}

async function loadHealth() {
  try {
    const health = await (await fetch("/health")).json();
    const model = health.model.split("/").filter(Boolean).pop();
    $("server-info").textContent = `geomag ${health.geomag} · ${model} on ${health.device} · queue ${health.queue}`;
    $("token-row").hidden = !health.token_required;
  } catch (err) {
    $("server-info").textContent = "server not reachable";
  }
}

// --- COCO RLE (pycocotools' compressed counts, column-major) -> a mask PNG ------------------------
function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

function maskBlob(rle) {
  const [h, w] = rle.size;
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  const px = data.data;
  for (let i = 3; i < px.length; i += 4) px[i] = 255; // opaque black
  let index = 0, value = 0;
  for (const run of rleCounts(rle.counts)) {
    if (value) {
      for (let j = index; j < index + run; j++) {
        const o = ((j % h) * w + Math.floor(j / h)) * 4; // column-major -> row-major
        px[o] = px[o + 1] = px[o + 2] = 255;
      }
    }
    index += run;
    value = 1 - value;
  }
  ctx.putImageData(data, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// --- showing a result ----------------------------------------------------------------------------
function download(name, blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = url; a.download = name; a.textContent = name;
  li.appendChild(a);
  $("downloads").appendChild(li);
}

function jsonBlob(value) {
  return new Blob([JSON.stringify(value, null, 2)], { type: "application/json" });
}

// --- the answer: each [SEG] is a chip that names its mask ----------------------------------------
function phraseColours(masks) {
  const keys = [];
  return masks.map((m, i) => {
    const key = m.phrase || `#${i}`; // a mask without a phrase gets a colour of its own
    if (!keys.includes(key)) keys.push(key);
    return PALETTE[keys.indexOf(key) % PALETTE.length];
  });
}

function showAnswer(body, colours) {
  const box = $("answer");
  box.textContent = "";
  const text = body.display_text ?? body.text ?? "";
  if (!text) { box.textContent = "(no text)"; return; }
  let at = 0;
  for (const ref of body.references || []) {
    const [start, end] = ref.span;
    box.append(text.slice(at, start));
    const chip = document.createElement("span");
    chip.className = "chip" + (ref.mask === null ? " none" : "");
    chip.textContent = text.slice(start, end);
    if (ref.mask !== null) {
      chip.dataset.mask = String(ref.mask);
      chip.style.borderColor = colours[ref.mask];
      chip.title = "show this mask on the map";
      chip.addEventListener("mouseenter", () => highlight(ref.mask, true));
      chip.addEventListener("mouseleave", () => highlight(ref.mask, false));
      chip.addEventListener("click", () => zoomTo(ref.mask));
    }
    box.append(chip);
    at = end;
  }
  box.append(text.slice(at));
}

// --- the plan's decision, in words -----------------------------------------------------------------
function showPlan(body) {
  const extra = body.extra || {};
  const plan = $("plan");
  plan.textContent = "";
  const add = (label, value) => {
    if (plan.childNodes.length) plan.append(" · ");
    const b = document.createElement("b");
    b.textContent = label;
    plan.append(b, value ? ` ${value}` : "");
  };
  const magcrop = extra.magcrop;
  if (typeof magcrop === "string" && magcrop.startsWith("skipped: ")) {
    add("kept the whole image:", magcrop.slice("skipped: ".length));
  } else if (!magcrop) {
    add("MagCrop off:", "the model saw the whole image");
  }
  for (const [name, box] of Object.entries(body.boxes || {})) add(`${name}`, `[${box.join(", ")}] px`);
  if (magcrop === true && extra.zoom) add("zoom", extra.zoom);
}

// --- the map: the input as the base layer, the masks and MagCrop's boxes over it -------------------
function highlight(index, on) {
  const layer = view.maskLayers[index];
  if (layer) layer.setStyle({ weight: on ? 4 : 2, fillOpacity: on ? 0.7 : 0.45 });
  for (const chip of document.querySelectorAll(`.chip[data-mask="${index}"]`)) {
    chip.classList.toggle("on", on);
    chip.style.background = on ? chip.style.borderColor : "";
  }
}

function zoomTo(index) {
  const layer = index === undefined ? view.masks : view.maskLayers[index];
  const bounds = layer && layer.getBounds && layer.getBounds();
  if (view.map) view.map.fitBounds(bounds && bounds.isValid() ? bounds : view.bounds, { maxZoom: view.map.getMaxZoom() });
}

function popup(properties) {
  const div = document.createElement("div");
  const b = document.createElement("b");
  b.textContent = `mask ${properties.mask}`;
  div.append(b, properties.phrase ? `: ${properties.phrase}` : "");
  if (properties.score !== undefined) div.append(document.createElement("br"), `score ${properties.score.toFixed(3)}`);
  return div;
}

function showMap(body, colours) {
  if (view.map) { view.map.remove(); view.map = null; }
  const spec = body.map;
  if (!spec || typeof L === "undefined") return;
  const geo = spec.kind === "geo";
  const [w, h] = spec.size;
  // a plain image: a flat grid of pixels (x = column, y = row, so the map's "latitude" is -row)
  const map = L.map("map", geo ? { zoomSnap: 0.25 } : { crs: L.CRS.Simple, minZoom: -6, maxZoom: 6, zoomSnap: 0.25 });
  const bounds = geo ? L.latLngBounds(spec.bounds) : L.latLngBounds([[-h, 0], [0, w]]);
  const coordsToLatLng = geo ? L.GeoJSON.coordsToLatLng : (c) => L.latLng(-c[1], c[0]);
  L.imageOverlay(spec.image, bounds, { alt: "the input image" }).addTo(map);
  view.maskLayers = [];
  const masks = L.geoJSON(spec.masks, {
    coordsToLatLng,
    style: (f) => ({ color: colours[f.properties.mask - 1], weight: 2, opacity: 1, fillOpacity: 0.45 }),
    onEachFeature: (f, layer) => {
      layer.bindPopup(() => popup(f.properties));
      view.maskLayers[f.properties.mask - 1] = layer;
      layer.on("mouseover", () => highlight(f.properties.mask - 1, true));
      layer.on("mouseout", () => highlight(f.properties.mask - 1, false));
    },
  }).addTo(map);
  const boxes = L.geoJSON(spec.boxes, {
    coordsToLatLng,
    style: { color: "#1f78ff", weight: 2, fill: false, dashArray: "6 4" },
    onEachFeature: (f, layer) => layer.bindTooltip(`MagCrop ${f.properties.name}`),
  }).addTo(map);
  L.control.layers(null, { "Masks": masks, "MagCrop boxes": boxes }, { collapsed: false }).addTo(map);
  if (geo) L.control.scale({ imperial: false }).addTo(map);
  map.on("mousemove", (e) => {
    $("cursor").textContent = geo
      ? `lon ${e.latlng.lng.toFixed(6)}, lat ${e.latlng.lat.toFixed(6)} (WGS84)`
      : `x ${e.latlng.lng.toFixed(1)}, y ${(-e.latlng.lat).toFixed(1)} (pixels)`;
  });
  map.fitBounds(bounds);
  view.map = map; view.masks = masks; view.bounds = bounds;
  $("map-caption").textContent = geo
    ? `${spec.crs} raster on a Web Mercator map, masks in WGS84 (click a mask for its phrase and score)`
    : `pixel coordinates of the ${w} x ${h} image (click a mask for its phrase and score)`;
  window.geomagMap = { map, masks, boxes, bounds, kind: spec.kind }; // for the console and the tests
}

// --- showing a result ----------------------------------------------------------------------------
async function show(body) {
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
  const extra = body.extra || {};
  const colours = phraseColours(body.masks);
  showAnswer(body, colours);
  $("granularity-out").textContent = body.granularity;
  const probs = extra.granularity_probabilities;
  $("granularity-why").textContent = probs
    ? "(classifier: " + Object.entries(probs).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") + ")"
    : "(forced)";
  const skipped = typeof extra.magcrop === "string" && extra.magcrop.startsWith("skipped: ");
  $("magcrop-out").textContent = skipped ? "on, skipped" : extra.magcrop ? "on" : "off";
  showPlan(body);
  // the masks in words, as `geomag parse` prints them (geomag.writing.mask_note): why none, duplicates merged
  const n = body.masks.length;
  const merged = extra.duplicates_merged || 0;
  $("mask-count").textContent = n === 0 && extra.no_mask
    ? `no mask: ${extra.no_mask}`
    : `${n} mask${n === 1 ? "" : "s"}` + (merged ? ` (${merged} duplicate${merged === 1 ? "" : "s"} merged)` : "");
  $("results").hidden = false; // before the map: Leaflet measures its container
  showMap(body, colours);
  $("overlay").src = body.overlay;
  const heat = (body.heatmaps || [])[0];
  $("heatmap-figure").hidden = !heat;
  if (heat) {
    $("heatmap").src = heat.image;
    const what = heat.source === "mask" ? "mask saliency" : heat.source === "psc" ? "PSC attention (Eq. 4)" : heat.source;
    $("heatmap-caption").textContent = `MagCrop's ${what} for ${heat.name}, over [${heat.box.join(", ")}]`;
  }
  const table = $("timings");
  table.innerHTML = "";
  for (const [stage, seconds] of Object.entries(body.timings || {})) {
    const row = table.insertRow();
    row.className = stage === "total" ? "total" : "";
    row.insertCell().textContent = stage;
    const cell = row.insertCell();
    cell.className = "num";
    cell.textContent = seconds.toFixed(3);
  }
  $("downloads").innerHTML = "";
  const { overlay, heatmaps, geojson, map, ...result } = body;
  download("result.json", jsonBlob(result));
  for (const [i, mask] of body.masks.entries()) {
    download(`mask_${String(i).padStart(2, "0")}.png`, await maskBlob(mask.rle));
  }
  if (geojson) download("result.geojson", jsonBlob(geojson));
}

async function submit(event) {
  event.preventDefault();
  if (!state.image) { setStatus("Choose an image first (or an example).", true); return; }
  const prompt = $("prompt").value.trim();
  if (!prompt) { setStatus("Type a prompt.", true); return; }
  const form = new FormData();
  form.append("image", state.image, state.name);
  form.append("prompt", prompt);
  form.append("granularity", $("granularity").value);
  form.append("magcrop", $("magcrop").checked ? "true" : "false");
  const tokens = $("max-new-tokens").value.trim();
  if (tokens) form.append("max_new_tokens", tokens);
  $("submit").disabled = true;
  const started = performance.now();
  const timer = setInterval(() => setStatus(`Parsing… ${((performance.now() - started) / 1000).toFixed(1)} s`), 100);
  try {
    const response = await fetch("/v1/parse?include=overlay,heatmap,geojson,map", {
      method: "POST", body: form, headers: authHeaders(),
    });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    clearInterval(timer);
    if (!response.ok) {
      const retry = response.headers.get("Retry-After");
      setStatus(`${body.error}${retry ? ` (retry in ${retry} s)` : ""}`, true);
      return;
    }
    await show(body);
    setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s (request ${body.request_id}).`);
  } catch (err) {
    clearInterval(timer);
    setStatus(`The server did not answer: ${err}`, true);
  } finally {
    $("submit").disabled = false;
    loadHealth();
  }
}

setUpDrop();
$("zoom-result").addEventListener("click", () => zoomTo());
$("form").addEventListener("submit", submit);
loadHealth();
loadExamples();
