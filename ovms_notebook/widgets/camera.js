// The browser half of ovms_notebook's camera widget (an anywidget ES module: no build step).
//
// getUserMedia camera -> a canvas per frame in flight -> JPEG (or raw RGBA) bytes sent to the kernel as
// a binary comm buffer -> the kernel answers each frame with its graph's output (shapes to draw, or the
// graph's own image as JPEG) -> drawn on the output canvas beside the camera.
//
// Flow control: at most `max_in_flight` frames wait for an answer. A camera frame that arrives while
// every slot is taken replaces the one waiting to be sent, and the one replaced is counted as dropped
// (latency over completeness). The kernel may drop too (it answers those with "drop").
//
// Everything the page knows is also in globalThis.ovmsNotebookCameras (by widget key), so tests and
// benchmarks can read latencies and whether the camera was released.

const registry = (globalThis.ovmsNotebookCameras ??= new Map());
const COLOURS = ["#00ff00", "#ff00ff", "#00ffff", "#ffff00", "#ff8000", "#ff0000"];
const RESOLUTIONS = ["320x240", "640x480", "1280x720"];
const KEEP_LATENCIES = 5000;

function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function keep(values, value) {
  values.push(value);
  if (values.length > 300) values.shift();
}

function element(tag, style, text) {
  const node = document.createElement(tag);
  if (style) node.style.cssText = style;
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawShapes(ctx, shapes, width, height) {
  const line = Math.max(2, Math.round(Math.min(width, height) / 160));
  ctx.lineWidth = line;
  ctx.font = `${Math.max(11, Math.round(Math.min(width, height) / 32))}px sans-serif`;
  for (const shape of shapes) {
    const colour = COLOURS[shape.colour % COLOURS.length];
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    if (shape.kind === "box") {
      const [x, y, w, h] = [shape.x * width, shape.y * height, shape.w * width, shape.h * height];
      ctx.strokeRect(x, y, w, h);
      if (shape.label) ctx.fillText(shape.label, x, Math.max(12, y - line - 2));
    } else if (shape.kind === "rect") {
      const [cx, cy, hw, hh] = [shape.cx * width, shape.cy * height, (shape.w * width) / 2, (shape.h * height) / 2];
      const [cos, sin] = [Math.cos(shape.rotation), Math.sin(shape.rotation)];
      ctx.beginPath();
      for (const [dx, dy] of [[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh], [-hw, -hh]]) {
        ctx.lineTo(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos);
      }
      ctx.stroke();
    }
    const points = shape.points || [];
    ctx.lineWidth = 2;
    for (const [a, b] of shape.edges || []) {
      if (!points[a] || !points[b]) continue;
      ctx.beginPath();
      ctx.moveTo(points[a][0] * width, points[a][1] * height);
      ctx.lineTo(points[b][0] * width, points[b][1] * height);
      ctx.stroke();
    }
    const radius = points.length > 100 ? 1 : line + 1;
    for (const [x, y] of points) {
      ctx.beginPath();
      ctx.arc(x * width, y * height, radius, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.lineWidth = line;
  }
}

function render({ model, el }) {
  const key = model.get("key");
  const existing = registry.get(key);
  if (existing && !existing.released) {
    el.appendChild(element("div", "color:#6b7280;font-size:12px", "this camera is shown in another view"));
    return () => {};
  }
  const state = {
    key, released: false, stream: null, tracks: [], active: false, frameCallback: null,
    pending: null, inflight: new Map(), pool: [], nextId: 0, sendChain: Promise.resolve(),
    captured: 0, sent: 0, droppedBrowser: 0, droppedKernel: 0, shown: 0, errors: 0, lastShownId: -1,
    latencies: [], kernelLatencies: [], encodeTimes: [], roundTrips: [], shownTimes: [], clock: "", width: 0, height: 0, lastText: "",
  };
  registry.set(key, state);

  // -- layout ------------------------------------------------------------------------------------------------
  const root = element("div", "display:flex;flex-direction:column;gap:4px;font-family:sans-serif;font-size:12px");
  const controls = element("div", "display:flex;gap:6px;align-items:center;flex-wrap:wrap");
  const devicePicker = element("select", "max-width:18em");
  const resolutionPicker = element("select");
  for (const value of RESOLUTIONS) resolutionPicker.appendChild(new Option(value, value));
  const button = element("button", "padding:1px 10px");
  const status = element("span", "color:#374151;font-family:monospace");
  controls.append(element("span", "", "camera"), devicePicker, resolutionPicker, button, status);
  const views = element("div", "display:flex;gap:6px;align-items:flex-start;flex-wrap:wrap");
  const video = element("video", "width:min(48%, 480px);background:#111;border:1px solid #d1d5db");
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  video.className = "ovms-camera-input";
  const output = element("canvas", "width:min(48%, 480px);background:#111;border:1px solid #d1d5db");
  output.className = "ovms-camera-output";
  const outputCtx = output.getContext("2d");
  const note = element("div", "color:#374151;font-family:monospace;min-height:1.2em");
  note.className = "ovms-camera-note";
  views.append(video, output);
  root.append(controls, views, note);
  el.appendChild(root);
  state.video = video;
  state.output = output;

  // -- camera --------------------------------------------------------------------------------------------------
  function setState(text) {
    model.set("camera_state", text);
    model.save_changes();
  }

  function stopCamera() {
    state.active = false;
    if (state.frameCallback !== null) video.cancelVideoFrameCallback(state.frameCallback);
    state.frameCallback = null;
    for (const track of state.tracks) track.stop();
    video.srcObject = null;
    state.stream = null;
    state.pending = null;
  }

  async function listDevices() {
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
    const list = devices.map((d, i) => ({ id: d.deviceId, label: d.label || `camera ${i + 1}` }));
    devicePicker.replaceChildren(...list.map((d) => new Option(d.label, d.id)));
    devicePicker.value = model.get("device_id") || (list[0] && list[0].id) || "";
    model.set("devices", list);
  }

  async function startCamera() {
    stopCamera();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setState("error: this page has no camera access (navigator.mediaDevices; needs https or localhost)");
      return;
    }
    const [width, height] = model.get("resolution").split("x").map(Number);
    const video_ = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
    const deviceId = model.get("device_id");
    if (deviceId) video_.deviceId = { exact: deviceId };
    setState("starting");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: video_, audio: false });
    } catch (error) {
      setState(`error: ${error.name}: ${error.message}`);
      return;
    }
    if (state.released || !model.get("running")) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    state.stream = stream;
    state.tracks = stream.getTracks();
    video.srcObject = stream;
    try {
      await video.play();
    } catch (error) {
      /* autoplay of a muted video is allowed; a failure here only delays the first frame */
    }
    await listDevices();
    const settings = state.tracks[0].getSettings();
    model.set("frame_size", [settings.width || video.videoWidth, settings.height || video.videoHeight]);
    if (!model.get("device_id") && settings.deviceId) model.set("device_id", settings.deviceId);
    model.set("camera_state", "on");
    model.save_changes();
    state.active = true;
    state.frameCallback = video.requestVideoFrameCallback(onFrame);
  }

  function onFrame(now, meta) {
    if (!state.active) return;
    state.frameCallback = video.requestVideoFrameCallback(onFrame);
    state.captured++;
    if (state.pending) state.droppedBrowser++; // replaced before it could be sent
    const t = meta && meta.captureTime ? meta.captureTime : now;
    state.clock = meta && meta.captureTime ? "captureTime" : "callback";
    state.pending = { t };
    pump();
  }

  // -- sending ------------------------------------------------------------------------------------------------
  function pump() {
    if (!state.active || !state.pending || state.inflight.size >= model.get("max_in_flight")) return;
    const frame = state.pending;
    state.pending = null;
    sendFrame(frame.t);
  }

  function sendFrame(t) {
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return;
    const id = state.nextId++;
    const canvas = state.pool.pop() || document.createElement("canvas");
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, width, height);
    state.width = width;
    state.height = height;
    const entry = { id, t, canvas, sentAt: null };
    state.inflight.set(id, entry);
    const format = model.get("format");
    // Encodings may finish out of order; sends are chained so the kernel gets frames in capture order.
    const encoded = format === "raw"
      ? Promise.resolve(ctx.getImageData(0, 0, width, height).data.buffer)
      : new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", model.get("quality"))).then((b) => b.arrayBuffer());
    state.sendChain = state.sendChain.then(() => encoded).then(
      (buffer) => {
        if (state.released) return;
        model.send({ type: "frame", id, t, width, height, format }, undefined, [buffer]);
        entry.sentAt = performance.now();
        state.sent++;
      },
      (error) => {
        state.inflight.delete(id);
        state.pool.push(canvas);
        setState(`error: cannot encode a frame: ${error}`);
      },
    );
  }

  // -- answers ------------------------------------------------------------------------------------------------
  async function onMessage(message, buffers) {
    if (!message || (message.type !== "result" && message.type !== "drop")) return;
    const entry = state.inflight.get(message.id);
    state.inflight.delete(message.id);
    if (typeof message.kernel_dropped === "number") state.droppedKernel = message.kernel_dropped;
    pump();
    if (!entry) return;
    if (message.type === "result" && message.id > state.lastShownId) {
      state.lastShownId = message.id;
      let picture = entry.canvas;
      if (message.image && buffers && buffers.length) {
        try {
          picture = await createImageBitmap(new Blob([buffers[0]], { type: "image/jpeg" }));
        } catch (error) {
          picture = entry.canvas;
        }
      }
      if (output.width !== picture.width || output.height !== picture.height) {
        output.width = picture.width;
        output.height = picture.height;
      }
      outputCtx.drawImage(picture, 0, 0);
      drawShapes(outputCtx, message.shapes || [], output.width, output.height);
      if (picture !== entry.canvas && picture.close) picture.close();
      const drawn = performance.now();
      state.shown++;
      state.latencies.push(drawn - entry.t);
      if (state.latencies.length > KEEP_LATENCIES) state.latencies.splice(0, state.latencies.length - KEEP_LATENCIES);
      state.shownTimes.push(drawn);
      if (state.shownTimes.length > 30) state.shownTimes.shift();
      const arrived = performance.now();
      if (entry.sentAt !== null) {
        keep(state.encodeTimes, entry.sentAt - entry.t);
        keep(state.roundTrips, arrived - entry.sentAt);
      }
      if (typeof message.kernel_ms === "number") {
        state.kernelLatencies.push(message.kernel_ms);
        if (state.kernelLatencies.length > KEEP_LATENCIES) state.kernelLatencies.shift();
      }
      if (message.error) state.errors++;
      state.lastText = message.text || "";
    }
    state.pool.push(entry.canvas);
  }
  model.on("msg:custom", onMessage);

  // -- status ---------------------------------------------------------------------------------------------------
  function stats() {
    const times = state.shownTimes;
    const fps = times.length > 1 ? ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]) : 0;
    const recent = state.latencies.slice(-300);
    return {
      captured: state.captured, sent: state.sent, shown: state.shown, in_flight: state.inflight.size,
      dropped_browser: state.droppedBrowser, dropped_kernel: state.droppedKernel,
      dropped: state.droppedBrowser + state.droppedKernel, errors: state.errors,
      fps: Math.round(fps * 10) / 10, p50_ms: percentile(recent, 50), p99_ms: percentile(recent, 99),
      kernel_p50_ms: percentile(state.kernelLatencies.slice(-300), 50),
      capture_to_send_p50_ms: percentile(state.encodeTimes, 50), round_trip_p50_ms: percentile(state.roundTrips, 50),
      width: state.width, height: state.height, clock: state.clock,
    };
  }
  state.stats = stats;

  function showStatus() {
    const s = stats();
    const camera = model.get("camera_state");
    const latency = s.p50_ms === null ? "—" : `${Math.round(s.p50_ms)}/${Math.round(s.p99_ms)} ms`;
    status.textContent = camera === "on"
      ? `${s.width}x${s.height} · ${s.fps.toFixed(1)} fps shown · sent ${s.sent} · dropped ${s.dropped} ` +
        `(browser ${s.dropped_browser}, kernel ${s.dropped_kernel}) · latency p50/p99 ${latency}`
      : `camera ${camera}`;
    note.textContent = state.lastText;
    button.textContent = model.get("running") ? "Stop" : "Start";
  }

  const timer = setInterval(() => {
    showStatus();
    if (state.active) {
      model.set("browser_stats", stats());
      model.save_changes();
    }
  }, 500);

  // -- controls and traits --------------------------------------------------------------------------------------
  button.onclick = () => {
    model.set("running", !model.get("running"));
    model.save_changes();
  };
  devicePicker.onchange = () => {
    model.set("device_id", devicePicker.value);
    model.save_changes();
  };
  resolutionPicker.onchange = () => {
    model.set("resolution", resolutionPicker.value);
    model.save_changes();
  };
  function restart() {
    resolutionPicker.value = model.get("resolution");
    if (model.get("running")) startCamera();
    else {
      stopCamera();
      setState("off");
    }
    showStatus();
  }
  const onDevice = () => {
    if (devicePicker.value !== model.get("device_id")) restart();
  };
  model.on("change:running", restart);
  model.on("change:resolution", restart);
  model.on("change:device_id", onDevice);
  restart();

  return () => {
    state.released = true;
    clearInterval(timer);
    stopCamera();
    model.off("msg:custom", onMessage);
    model.off("change:running", restart);
    model.off("change:resolution", restart);
    model.off("change:device_id", onDevice);
  };
}

export default { render };
