"""The physical limits, measured in the same run on one server core:
RSA-2048 PKCS#1 v1.5 SHA-256 signatures with ``cryptography`` (rows c, e, g sign once per
request) and argon2id verifications at login_site's parameters (row f verifies once).

    python -m bench.ceilings rsa|argon2 --seconds S      # prints {"rate": per second}
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.fixture import argon2_parameters


def _rate(operation, seconds: float) -> float:
    operation()  # first call outside the clock (allocation, lazy setup)
    count = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        operation()
        count += 1
        now = time.perf_counter()
        if now >= end:
            return count / (now - start)


def rsa_signatures(seconds: float) -> float:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # A JWT signing input of a typical size.
    message = b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + b"e" * 400
    return _rate(lambda: key.sign(message, padding.PKCS1v15(), hashes.SHA256()), seconds)


def argon2_verifications(seconds: float) -> float:
    params = argon2_parameters()
    hasher = PasswordHasher(
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost_kib"],
        parallelism=params["parallelism"],
    )
    stored = hasher.hash("Bench-user-password-1")
    return _rate(lambda: hasher.verify(stored, "Bench-user-password-1"), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings")
    parser.add_argument("kind", choices=("rsa", "argon2"))
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    measure = rsa_signatures if args.kind == "rsa" else argon2_verifications
    json.dump({"rate": measure(args.seconds)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
