// webhook_verify.mjs - the official Standard Webhooks library (npm standardwebhooks,
// pinned in package.json) on the receiving side of test_signing.py.
//
//   node webhook_verify.mjs serve PORT SECRET LOG
//       an HTTP receiver on 127.0.0.1:PORT: every POST is verified with SECRET;
//       202 {"message":"Accepted","messageId":...} when it verifies, 401 when not;
//       one JSON line per request in LOG (headers, body, ok, error). GET /health: 200.
//   node webhook_verify.mjs check
//       reads [{secret, headers, body}] on stdin, writes [{ok, error}] on stdout.
import { appendFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Webhook } from "standardwebhooks";

function verify(secret, headers, body) {
  try {
    new Webhook(secret).verify(body, headers);
    return { ok: true, error: null };
  } catch (e) {
    return { ok: false, error: String(e.message) };
  }
}

const [mode, ...args] = process.argv.slice(2);

if (mode === "serve") {
  const [port, secret, log] = args;
  createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST") {
        res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
        return;
      }
      const body = Buffer.concat(chunks).toString("utf8");
      const headers = {};
      for (const k of ["webhook-id", "webhook-timestamp", "webhook-signature"])
        headers[k] = req.headers[k];
      const v = verify(secret, headers, body);
      appendFileSync(log, JSON.stringify({ headers, body, ...v }) + "\n");
      if (v.ok)
        res.writeHead(202, { "content-type": "application/json" })
          .end(JSON.stringify({ message: "Accepted", messageId: randomUUID() }));
      else
        res.writeHead(401, { "content-type": "application/json" })
          .end(JSON.stringify({ error: v.error }));
    });
  }).listen(Number(port), "127.0.0.1");
} else if (mode === "check") {
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => {
    const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    process.stdout.write(JSON.stringify(cases.map((c) => verify(c.secret, c.headers, c.body))));
  });
} else {
  process.stderr.write("usage: webhook_verify.mjs serve PORT SECRET LOG | check\n");
  process.exit(2);
}
