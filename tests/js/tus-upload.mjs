// The server's tus endpoint with the reference tus client (tus-js-client, unchanged): an upload
// aborted after its first chunk and resumed from its URL (the client asks the server's offset
// with HEAD), and an upload the server refuses, whose reason must reach the client. Run by
// tests/tests/tus_client.rs; settings come from the environment. Prints one JSON line with what
// happened; exits non-zero on an unexpected outcome.
import * as tus from "tus-js-client";
import { readFileSync } from "node:fs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const endpoint = `${env("FIELDSYNC_URL")}/api/v1/uploads`;
const headers = { Authorization: `Bearer ${env("TOKEN")}` };
const bytes = readFileSync(env("FILE"));
const chunkSize = Number(env("CHUNK"));
const common = { endpoint, headers, chunkSize, retryDelays: null, storeFingerprintForResuming: false };

// 1. Start, and abort once the first chunk is accepted.
const sent = [];
const first = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(bytes, {
    ...common,
    metadata: { doc: env("DOC"), sha256: env("SHA256"), filename: "photo.jpg" },
    onChunkComplete: (size, accepted) => {
      sent.push([accepted - size, accepted]);
      upload.abort().then(() => resolve(upload.url), reject);
    },
    onError: reject,
    onSuccess: () => reject(new Error("finished before it could be aborted")),
  });
  upload.start();
});

// 2. Resume from the upload's URL.
const resumedFrom = await new Promise((resolve, reject) => {
  let from = null;
  const upload = new tus.Upload(bytes, {
    ...common,
    uploadUrl: first,
    onChunkComplete: (size, accepted) => {
      if (from === null) from = accepted - size;
      sent.push([accepted - size, accepted]);
    },
    onError: reject,
    onSuccess: () => resolve(from),
  });
  upload.start();
});

// 3. A refusal: a sha256 the document does not reference.
const refusal = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(bytes, {
    ...common,
    metadata: { doc: env("DOC"), sha256: "0".repeat(64) },
    onError: (e) => {
      const res = e.originalResponse;
      resolve(res ? { status: res.getStatus(), body: res.getBody() } : { error: String(e) });
    },
    onSuccess: () => reject(new Error("an upload of the wrong bytes was accepted")),
  });
  upload.start();
});

console.log(JSON.stringify({ url: first, resumedFrom, sent, total: bytes.length, refusal }));
