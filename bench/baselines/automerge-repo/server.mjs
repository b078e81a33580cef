// Baseline 2 of the side-by-side benchmark: automerge-repo's standard sync server, as in
// automerge-repo's `examples/sync-server` (a Repo with the WebSocket server adapter on a
// `ws` server, NodeFS storage, and the example's share policy), minus its Express page,
// its Prometheus metrics and its per-event JSON logging.
//
//   node server.mjs [--port 0] [--host 127.0.0.1] [--data DIR]
//
// The first line on stdout is exactly `listening on HOST:PORT` (the load generator reads it).

import fs from "node:fs"
import os from "node:os"
import { parseArgs } from "node:util"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    data: { type: "string", default: "automerge-sync-server-data" },
  },
})

fs.mkdirSync(values.data, { recursive: true })

const wss = new WebSocketServer({ host: values.host, port: Number(values.port) })

// As in the example. Its comment: "Since this is a server, we don't share generously —
// meaning we only sync documents they already know about and can ask for by ID."
const repo = new Repo({
  network: [new WebSocketServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(values.data),
  peerId: `storage-server-${os.hostname()}`,
  sharePolicy: async () => false,
})

// The repo attaches its adapter to the `ws` server only once its storage id is read, and
// a connection accepted before that loses its `join` (and is then cut by the keep-alive).
// So say where we listen only when the adapter listens too.
const listening = new Promise(resolve => wss.once("listening", resolve))
await Promise.all([listening, repo.storageId()])
while (wss.listenerCount("connection") === 0) {
  await new Promise(resolve => setImmediate(resolve))
}
const { address, port } = wss.address()
process.stdout.write(`listening on ${address}:${port}\n`)

wss.on("error", err => {
  console.error(`automerge-repo sync server: ${err.message}`)
  process.exit(1)
})

const stop = () => {
  wss.close()
  repo.shutdown().finally(() => process.exit(0))
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
