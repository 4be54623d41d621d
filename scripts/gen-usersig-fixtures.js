#!/usr/bin/env node
// Prints UserSigs made by Tencent's official Node generator, as a JSON array on stdout.
// Called by gen-usersig-fixtures.py (which writes the fixture file); not meant to be run alone.
//
// Package: npm tls-sig-api-v2@1.0.2 (module file TLSSigAPIv2.js, class `Api`).
// Install:  npm install --prefix /tmp/usersig-official tls-sig-api-v2@1.0.2
// Run via:  NODE_PATH=/tmp/usersig-official/node_modules python3 scripts/gen-usersig-fixtures.py
//
// Input (stdin): JSON array of cases {sdkappid, key, identifier, time, expire, userbuf_b64?}.
// The library reads the clock through Date.now(), so we pin it to each case's `time`; that keeps
// the output reproducible and lets the Rust test inject the same clock.
'use strict';

const TLSSigAPIv2 = require('tls-sig-api-v2');
const PACKAGE = 'npm:tls-sig-api-v2@' + require('tls-sig-api-v2/package.json').version;

function withClock(unixSecs, fn) {
  const realNow = Date.now;
  Date.now = () => unixSecs * 1000;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

function generate(c) {
  const api = new TLSSigAPIv2.Api(c.sdkappid, c.key);
  return withClock(c.time, () => {
    if (c.userbuf_b64 === undefined) {
      return { method: 'Api.genUserSig', usersig: api.genUserSig(c.identifier, c.expire) };
    }
    const userbuf = Buffer.from(c.userbuf_b64, 'base64');
    return { method: 'Api.genSig(userbuf)', usersig: api.genSig(c.identifier, c.expire, userbuf) };
  });
}

const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map((c) => {
  const { method, usersig } = generate(c);
  return { generator: `${PACKAGE} ${method}`, ...c, usersig };
});
process.stdout.write(JSON.stringify(out));
