// The automerge-repo side of the fetch benchmark (`tests/src/bin/fetch.rs`).
//
//   node server.mjs populate DIR DOCS.json  stores each document of DOCS.json
//                                           in DIR and writes DIR/urls.json
//   node server.mjs serve DIR               serves DIR over a websocket on a
//                                           free loopback port, printing
//                                           "listening PORT"
import fs from "node:fs"
import path from "node:path"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [mode, dir, docsFile] = process.argv.slice(2)
const storage = new NodeFSStorageAdapter(path.join(dir, "store"))

if (mode === "populate") {
  const docs = JSON.parse(fs.readFileSync(docsFile, "utf8"))
  const repo = new Repo({ storage, network: [] })
  const urls = docs.map(d => repo.create(d).url)
  await repo.flush()
  fs.writeFileSync(path.join(dir, "urls.json"), JSON.stringify(urls))
  await repo.shutdown()
} else if (mode === "serve") {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
  await new Promise(resolve => wss.on("listening", resolve))
  // The server answers what clients ask for; it does not offer documents
  // on its own.
  new Repo({
    storage,
    network: [new WebSocketServerAdapter(wss)],
    sharePolicy: async () => false,
  })
  console.log(`listening ${wss.address().port}`)
} else {
  console.error("usage: server.mjs populate DIR DOCS.json | serve DIR")
  process.exit(2)
}
