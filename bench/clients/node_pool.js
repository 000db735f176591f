// node-postgres' Pool with ssl.ca read at start (its documented way): does a
// new connection see a rotated file?
const fs = require('fs');
const readline = require('readline');
const { Pool } = require('pg');

const [host, port, rootcert] = process.argv.slice(2);
const pool = new Pool({
  host, port: Number(port), user: 'postgres', database: 'postgres', max: 4,
  ssl: { ca: fs.readFileSync(rootcert).toString(), rejectUnauthorized: true },
});
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

(async () => {
  for (let i = 0; i < 2; i++) {
    try {
      const a = await pool.connect();
      const b = await pool.connect();  // a second one: a new connection
      await a.query('select 1');
      await b.query('select 1');
      a.release(true);
      b.release(true);
      console.log('ok');
    } catch (e) {
      console.log('fail ' + String(e.message).split('\n')[0]);
    }
    await lines.next();
  }
  await pool.end();
  process.exit(0);
})();
