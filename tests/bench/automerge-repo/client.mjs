// A fresh automerge-repo client (no storage) fetching every document in
// URLS.json from the sync server at WS_URL; prints what it took as JSON.
//
//   node client.mjs WS_URL URLS.json
import fs from "node:fs"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const [url, urlsFile] = process.argv.slice(2)
const urls = JSON.parse(fs.readFileSync(urlsFile, "utf8"))
const started = performance.now()
const repo = new Repo({ network: [new WebSocketClientAdapter(url)] })
const handles = await Promise.all(urls.map(u => repo.find(u)))
let chars = 0
for (const h of handles) {
  const d = h.doc()
  chars += String(d.title).length + String(d.body).length
}
const ms = performance.now() - started
console.log(JSON.stringify({ docs: handles.length, chars, ms }))
process.exit(0)
