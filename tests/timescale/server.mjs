// PostgreSQL 17 + TimescaleDB 2.23 compiled to WASM (PGlite), served on a loopback TCP port for
// `make test-timescale`. Usage: node server.mjs PORT
import { PGlite } from "@electric-sql/pglite";
import { timescaledb } from "@electric-sql/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2] || 5499);
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
console.log(`ready ${server.getServerConn()}`);
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
