// specdenoise web page: pick, drop or record -> POST /v1/jobs (upload progress) -> poll the job
// (server progress) -> show spectrograms, players and a download. No libraries, nothing external.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const maxBytes = Number(document.body.dataset.maxUpload) || 200 * 1024 * 1024;
  const els = {
    drop: $("drop"), file: $("file-input"), record: $("record"), recordLabel: $("record-label"),
    strength: $("strength"), strengthValue: $("strength-value"), progressBox: $("progress-box"),
    progress: $("progress"), status: $("status"), percent: $("percent"), error: $("error"),
    result: $("result"), imgNoisy: $("img-noisy"), imgDenoised: $("img-denoised"),
    audioNoisy: $("audio-noisy"), audioDenoised: $("audio-denoised"), download: $("download"),
    again: $("again"), noisyName: $("noisy-name"), resultMeta: $("result-meta"),
  };
  $("max-mb").textContent = String(Math.round(maxBytes / 1048576));

  let current = null;      // the File or Blob last sent
  let noisyUrl = null;     // object URL of it, for the "noisy" player
  let busy = false;
  let recorder = null, recordTimer = null, recordStart = 0;

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = false;
    els.progressBox.hidden = true;
    setBusy(false);
  }
  function clearError() { els.error.hidden = true; els.error.textContent = ""; }
  function setBusy(on) {
    busy = on;
    els.again.disabled = on;
    els.drop.setAttribute("aria-busy", on ? "true" : "false");
  }
  function setProgress(label, fraction) {
    els.progressBox.hidden = false;
    els.status.textContent = label;
    if (fraction == null) { els.progress.removeAttribute("value"); els.percent.textContent = ""; return; }
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    els.progress.value = pct;
    els.percent.textContent = pct + " %";
  }
  function strength() { return Number(els.strength.value) / 100; }
  els.strength.addEventListener("input", () => { els.strengthValue.textContent = els.strength.value + " %"; });

  function errorFrom(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON */ }
    if (xhr.status === 0) return "The server could not be reached; check that it is still running.";
    return "The server answered with an error (" + xhr.status + ").";
  }

  function start(file) {
    if (busy) return;
    clearError();
    if (!file) return;
    if (file.size === 0) return showError("That file is empty.");
    if (file.size > maxBytes) return showError("That file is larger than this server's limit of " + Math.round(maxBytes / 1048576) + " MB.");
    current = file;
    if (noisyUrl) URL.revokeObjectURL(noisyUrl);
    noisyUrl = URL.createObjectURL(file);
    setBusy(true);
    els.result.hidden = true;
    const form = new FormData();
    form.append("strength", String(strength()));
    form.append("file", file, file.name || "recording.webm");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/jobs");
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) setProgress("Uploading…", e.loaded / e.total * 0.3); };
    xhr.onerror = () => showError("The upload failed; check your connection and try again.");
    xhr.onload = () => {
      if (xhr.status !== 202) {
        let msg = errorFrom(xhr);
        const wait = xhr.getResponseHeader("Retry-After");
        if (xhr.status === 503 && wait) msg = msg.replace(/\.$/, "") + " (about " + wait + " s).";
        return showError(msg);
      }
      poll(JSON.parse(xhr.responseText).id);
    };
    setProgress("Uploading…", 0);
    xhr.send(form);
  }

  async function poll(id) {
    for (;;) {
      let job;
      try {
        const r = await fetch("/v1/jobs/" + id, { cache: "no-store" });
        job = await r.json();
        if (!r.ok) return showError(job.error || "The job disappeared.");
      } catch (e) {
        return showError("Lost contact with the server while it was working; try again.");
      }
      if (job.state === "done") return showResult(job);
      if (job.state === "failed") return showError(job.error || "Denoising failed.");
      if (job.state === "cancelled") return showError("The job was cancelled.");
      setProgress(job.state === "queued" ? "Waiting in line…" : "Removing noise…", 0.3 + 0.7 * (job.progress || 0));
      await new Promise((res) => setTimeout(res, 300));
    }
  }

  function showResult(job) {
    setProgress("Done", 1);
    const name = (current && current.name) || "recording";
    els.noisyName.textContent = name;
    const secs = job.duration_s != null ? job.duration_s.toFixed(1) + " s, " : "";
    els.resultMeta.textContent = secs + (job.sample_rate / 1000) + " kHz, " +
      (job.channels === 1 ? "mono" : job.channels + " channels") + ", " + job.format.toUpperCase();
    els.imgNoisy.src = job.noisy_spectrogram_url;
    els.imgDenoised.src = job.spectrogram_url;
    els.audioNoisy.src = noisyUrl;
    els.audioDenoised.src = job.audio_url;
    els.download.href = job.audio_url + "?download=true";
    const stem = name.replace(/\.[^.]*$/, "") || "audio";
    els.download.setAttribute("download", stem + "-denoised." + job.format);
    els.result.hidden = false;
    els.progressBox.hidden = true;
    setBusy(false);
    els.result.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // Pick, drop, keyboard
  els.file.addEventListener("change", () => { start(els.file.files[0]); els.file.value = ""; });
  els.drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.file.click(); } });
  for (const type of ["dragenter", "dragover"]) {
    els.drop.addEventListener(type, (e) => { e.preventDefault(); els.drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    els.drop.addEventListener(type, (e) => { e.preventDefault(); els.drop.classList.remove("over"); });
  }
  els.drop.addEventListener("drop", (e) => {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return showError("Drop a file from your computer, not a link or text.");
    start(files[0]);
  });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  els.again.addEventListener("click", () => { if (current) start(current); });

  // Record from the microphone (MediaRecorder: WebM/Opus in Chromium and Firefox, MP4 in Safari)
  els.record.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    if (busy) return;
    clearError();
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      return showError("This browser cannot record audio here; open the page over https or on this computer.");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    } catch (e) {
      return showError("The microphone is not available: " + (e && e.name === "NotAllowedError" ? "permission was refused." : "no microphone was found."));
    }
    const type = ["audio/webm;codecs=opus", "audio/webm", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
    const chunks = [];
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      clearInterval(recordTimer);
      els.record.setAttribute("aria-pressed", "false");
      els.recordLabel.textContent = "Record";
      const mime = recorder.mimeType || type || "audio/webm";
      recorder = null;
      const ext = mime.includes("mp4") ? "m4a" : "webm";
      const blob = new Blob(chunks, { type: mime });
      start(new File([blob], "recording." + ext, { type: mime }));
    };
    recorder.start(250);
    recordStart = Date.now();
    els.record.setAttribute("aria-pressed", "true");
    els.recordLabel.textContent = "Stop 0:00";
    recordTimer = setInterval(() => {
      const s = Math.floor((Date.now() - recordStart) / 1000);
      els.recordLabel.textContent = "Stop " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }, 250);
  });
})();
