#!/usr/bin/env python3
"""Client assertions (private_key_jwt, RFC 7523) and DPoP proofs (RFC 9449) for bench/run.sh's
"client_credentials, private_key_jwt + DPoP" scenario. Both are single use at the server (each
`jti` is recorded), so every request of the wrk run needs its own pair, made before the run.

    dpop_material.py keys DIR
        Makes the client's key (its assertions) and the DPoP key (its proofs), both P-256 for
        ES256: DIR/client.pem and DIR/dpop.pem (PKCS#8), DIR/client-jwks.json (the public half
        of the client's key, for `latchkey client create --jwks-file`) and DIR/dpop.jkt (the
        RFC 7638 thumbprint of the DPoP key, which the tokens' cnf.jkt must equal).

    dpop_material.py pairs DIR CLIENT_ID TOKEN_URL PAIRS THREADS
        Writes DIR/dpop-T.txt for T = 1..THREADS (one file per wrk thread, each its own Lua
        state), PAIRS/THREADS lines each, and DIR/dpop-check.txt with one more pair for a
        request before the run; a line is "ASSERTION PROOF". Prints "VALID_UNTIL" (epoch
        seconds): no proof passes the server's iat window after it.

Times. The proofs' `iat` must be within 60 s of the server's clock when used (dpop::WINDOW),
and making a few hundred thousand pairs takes a while, so every proof carries
iat = start + LEAD with LEAD = 50 s (the server's window is symmetric): they pass from 10 s
before the generation started until 110 s after it, which covers the generation and the run
(run.sh checks VALID_UNTIL before it starts wrk). The assertions have iat = start and
exp = start + 240 s: after every use, and within the server's limit of 5 minutes ahead of its
clock at any use after the start.

Signing uses `cryptography` directly (joserfc, which the interop test uses, depends on it):
joserfc's JWS layer was about three times slower per token here, and the run needs up to a
million signatures. The JWS is the standard compact form: base64url(header).base64url(claims)
.base64url(r || s), r and s 32 bytes each (RFC 7518 §3.4). One process per thread file, so both
cores sign.
"""

import base64
import concurrent.futures
import hashlib
import json
import os
import secrets
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

LEAD = 50  # seconds: iat = start + LEAD (see the module doc)
ASSERTION_LIFE = 240  # seconds after start: exp of every assertion
WINDOW = 60  # the server's DPoP iat window, either side (src/oauth/dpop.rs WINDOW)


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def public_jwk(key) -> dict:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")).decode(),
        "y": b64url(numbers.y.to_bytes(32, "big")).decode(),
    }


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest()).decode()


def load(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def keys(folder):
    client = ec.generate_private_key(ec.SECP256R1())
    dpop = ec.generate_private_key(ec.SECP256R1())
    for name, key in (("client", client), ("dpop", dpop)):
        with open(os.path.join(folder, f"{name}.pem"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with open(os.path.join(folder, "client-jwks.json"), "w") as f:
        json.dump({"keys": [dict(public_jwk(client), kid="bench-client", alg="ES256", use="sig")]}, f)
    with open(os.path.join(folder, "dpop.jkt"), "w") as f:
        f.write(thumbprint(public_jwk(dpop)) + "\n")


def sign(key, header_b64: bytes, claims: dict) -> bytes:
    signing_input = header_b64 + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input + b"." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def write_pairs(folder, name, client_id, token_url, count, start, run_id):
    """`count` lines "ASSERTION PROOF" into folder/name, each jti unique in this run."""
    client, dpop = load(os.path.join(folder, "client.pem")), load(os.path.join(folder, "dpop.pem"))
    compact = {"separators": (",", ":")}
    assertion_header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench-client"}, **compact).encode())
    proof_header = b64url(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(dpop)}, **compact).encode())
    iat = start + LEAD
    with open(os.path.join(folder, name), "wb") as out:
        for n in range(count):
            jti = f"{run_id}-{name.removesuffix('.txt')}-{n}"
            assertion = sign(client, assertion_header, {
                "iss": client_id, "sub": client_id, "aud": token_url, "jti": jti,
                "iat": start, "exp": start + ASSERTION_LIFE,
            })
            proof = sign(dpop, proof_header, {"jti": jti, "htm": "POST", "htu": token_url, "iat": iat})
            out.write(assertion + b" " + proof + b"\n")
    return count


def pairs(folder, client_id, token_url, total, threads):
    start = int(time.time())
    run_id = secrets.token_hex(6)
    per_thread = -(-total // threads)
    with concurrent.futures.ProcessPoolExecutor(max_workers=threads) as pool:
        jobs = [pool.submit(write_pairs, folder, f"dpop-{t}.txt", client_id, token_url, per_thread, start, run_id)
                for t in range(1, threads + 1)]
        jobs.append(pool.submit(write_pairs, folder, "dpop-check.txt", client_id, token_url, 1, start, run_id))
        made = sum(job.result() for job in jobs)
    assert made == per_thread * threads + 1, f"made {made} pairs, wanted {per_thread * threads + 1}"
    print(start + LEAD + WINDOW)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "keys":
        keys(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "pairs":
        pairs(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit(__doc__)
