#!/usr/bin/env python3
"""Regenerates crates/tagcast-usersig/tests/fixtures/official.json.

The fixture holds UserSigs produced by Tencent's *official* TLSSigAPIv2 generators, so the Rust
verifier is tested against real third-party output rather than against our own signer.

Packages used:
  * PyPI  tls-sig-api-v2==1.1   (module `TLSSigAPIv2`, class `TLSSigAPIv2`)
  * npm   tls-sig-api-v2@1.0.2  (via scripts/gen-usersig-fixtures.js; skipped if not installed)

Exact commands:
  python3 -m venv /tmp/usersig-official/venv
  /tmp/usersig-official/venv/bin/pip install tls-sig-api-v2==1.1
  npm install --prefix /tmp/usersig-official tls-sig-api-v2@1.0.2
  NODE_PATH=/tmp/usersig-official/node_modules \\
      /tmp/usersig-official/venv/bin/python scripts/gen-usersig-fixtures.py

Both libraries read the wall clock; we pin it to each case's `time` so the output is
reproducible and the Rust test can inject the same clock.
"""

import base64
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from unittest import mock

import TLSSigAPIv2

PY_PACKAGE = "pypi:tls-sig-api-v2==" + metadata.version("tls-sig-api-v2")
NODE_PACKAGE_HINT = "npm:tls-sig-api-v2@1.0.2"

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "crates/tagcast-usersig/tests/fixtures/official.json"
NODE_SCRIPT = REPO / "scripts/gen-usersig-fixtures.js"

DEMO_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
OTHER_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"

# A TRTC PrivateMapKey-style userbuf (spec 7.4): ver 0, account "xiaojun", sdkappid 1400000000,
# room 10000, expiry, privileges 255, account type 0. Its content is opaque to the verifier.
USERBUF = (
    bytes([0, 0, 7]) + b"xiaojun"
    + (1400000000).to_bytes(4, "big") + (10000).to_bytes(4, "big")
    + (1700086400).to_bytes(4, "big") + (255).to_bytes(4, "big") + (0).to_bytes(4, "big")
)

CASES = [
    # sdkappid, key, identifier, time, expire, userbuf
    (1400000000, DEMO_KEY, "administrator", 1700000000, 86400, None),
    (1400000000, DEMO_KEY, "xiaojun", 1718764800, 180 * 86400, None),
    (20030819, OTHER_KEY, "user_42", 1718764800, 604800, None),
    (1600012345, OTHER_KEY, "张三", 1735689600, 3600, None),
    (1600012345, OTHER_KEY, "Zoë-Ångström_ß", 1735689600, 1, None),
    (1400000000, DEMO_KEY, "emoji🚀user", 1750000000, 31536000, None),
    (4294967295, DEMO_KEY, "a", 1750000000, 60, None),
    (1400000000, DEMO_KEY, 'quote"back\\slash', 1700000000, 86400, None),
    (1400000000, DEMO_KEY, "xiaojun", 1700000000, 86400, USERBUF),
    (1400000000, DEMO_KEY, "empty_userbuf", 1700000000, 86400, b""),
]


def case_dict(sdkappid, key, identifier, time, expire, userbuf):
    case = {
        "sdkappid": sdkappid,
        "key": key,
        "identifier": identifier,
        "time": time,
        "expire": expire,
    }
    if userbuf is not None:
        case["userbuf_b64"] = base64.b64encode(userbuf).decode()
    return case


def python_entry(case):
    api = TLSSigAPIv2.TLSSigAPIv2(case["sdkappid"], case["key"])
    with mock.patch.object(TLSSigAPIv2.time, "time", return_value=float(case["time"])):
        if "userbuf_b64" in case:
            userbuf = base64.b64decode(case["userbuf_b64"])
            usersig = api.gen_sig_with_userbuf(case["identifier"], case["expire"], userbuf)
            method = "gen_sig_with_userbuf"
        else:
            usersig = api.gen_sig(case["identifier"], case["expire"])
            method = "gen_sig"
    return {"generator": f"{PY_PACKAGE} {method}", **case, "usersig": usersig}


def node_entries(cases):
    """Runs the npm package through the companion .js script; None if node or it is missing."""
    try:
        result = subprocess.run(
            ["node", str(NODE_SCRIPT)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            check=True,
            env=os.environ,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"skipping npm generator: {err}", file=sys.stderr)
        return None
    return json.loads(result.stdout)


def main():
    cases = [case_dict(*c) for c in CASES]
    entries = [python_entry(c) for c in cases]
    generators = [PY_PACKAGE]
    from_node = node_entries(cases)
    if from_node is not None:
        entries.extend(from_node)
        generators.append(from_node[0]["generator"].split(" ")[0])
    fixture = {
        "comment": "UserSigs from Tencent's official TLSSigAPIv2 generators; regenerate with "
        "scripts/gen-usersig-fixtures.py. Each entry verifies at now == time.",
        "generators": generators,
        "entries": entries,
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} entries from {', '.join(generators)} to {FIXTURE}")


if __name__ == "__main__":
    main()
