"""`just bench-audit`: `cmkguard audit` against Cloud Custodian and the floor, same run, same moto.

For each size N it makes N secrets in one fresh moto (half on the default key, half on one
customer managed key), then runs, one after another, each through a counting proxy in front of
moto:
  floor         ceil(N/100) bare `ListSecrets` pages fetched by a plain loop (raw HTTP, in process)
  audit         cmkguard audit (release build), dry run
  custodian     custodian run --cache-period 0, the policy without an action
  audit+tag     cmkguard audit --apply --actions tag (tags the N/2 secrets on the default key)
  custodian+tag custodian run with a `tag` action (another tag key, so the runs do not interfere)
and prints wall time, peak memory (max RSS of the process and its children) and the AWS requests
it made, with the ratios. Figures only: nothing here asserts a time.

Usage: bench/audit.py --moto .venv/bin/moto_server --custodian .venv-c7n/bin/custodian \
                      --cmkguard target/release/cmkguard [--sizes 1000,10000]
"""

import argparse
import concurrent.futures
import http.client
import http.server
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

REGION = "us-east-1"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
POLICY = """policies:
  - name: secrets-on-aws-managed-key
    resource: secrets-manager
    filters:
      - or:
          - KmsKeyId: absent
          - type: kms-key
            key: "c7n:AliasName"
            value: alias/aws/secretsmanager
{actions}"""
TAG_ACTION = """    actions:
      - type: tag
        key: c7n-status
        value: non-compliant
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counting(http.server.BaseHTTPRequestHandler):
    """Forwards every request to moto and counts it by operation."""

    protocol_version = "HTTP/1.0"
    upstream = None
    counts = Counter()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target")
        if target:
            op = target.split(".")[-1]
        else:
            params = dict(p.split("=", 1) for p in body.decode(errors="replace").split("&") if "=" in p)
            op = params.get("Action", f"{self.command} {self.path.split('?')[0]}")
        with Counting.lock:
            Counting.counts[op] += 1
        conn = http.client.HTTPConnection(*Counting.upstream, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


def take_counts():
    with Counting.lock:
        counts = dict(Counting.counts)
        Counting.counts.clear()
    return counts


def run_measured(argv, env, stdout):
    """Runs a command; returns (wall seconds, max RSS in MiB of it and its children, exit code)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.returncode not in (0, 1):
        print(f"  {argv[0]} exited {proc.returncode}: {stderr[-2000:]}", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def moto_call(port, target, payload):
    service = "kms" if target.startswith("TrentService") else "secretsmanager"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(
        "POST",
        "/",
        body=json.dumps(payload),
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1", "Authorization": AUTH.format(service=service)},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{target}: {response.status} {data[:300]}")
    return json.loads(data or b"{}")


def make_world(moto_port, n):
    conn = http.client.HTTPConnection("127.0.0.1", moto_port)
    conn.request("POST", "/moto-api/reset")
    conn.getresponse().read()
    key = moto_call(moto_port, "TrentService.CreateKey", {"Description": "bench"})["KeyMetadata"]["Arn"]

    def create(i):
        payload = {"Name": f"bench/secret-{i:05d}", "SecretString": "x"}
        if i % 2:
            payload["KmsKeyId"] = key
        for attempt in range(5):
            try:
                return moto_call(moto_port, "secretsmanager.CreateSecret", payload)
            except RuntimeError as e:
                # moto answers 500 now and then under concurrent writes; a retry may find it made.
                if "ResourceExistsException" in str(e):
                    return None
                if attempt == 4:
                    raise
                time.sleep(0.2)

    # One at a time: concurrent CreateSecret calls make moto 5.2.5 answer 500 past a few thousand.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        list(pool.map(create, range(n)))


def floor(proxy_port):
    """The bare pages: ListSecrets, MaxResults 100, until there is no NextToken."""
    start = time.monotonic()
    token, secrets = None, 0
    while True:
        payload = {"MaxResults": 100}
        if token:
            payload["NextToken"] = token
        page = moto_call(proxy_port, "secretsmanager.ListSecrets", payload)
        secrets += len(page.get("SecretList", []))
        token = page.get("NextToken")
        if not token:
            break
    return time.monotonic() - start, secrets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moto", required=True)
    parser.add_argument("--custodian", help="Cloud Custodian's `custodian` (not needed with --securityhub)")
    parser.add_argument(
        "--securityhub",
        action="store_true",
        help="instead: `audit --apply --actions tag` against the same with `securityhub`, each on a fresh world",
    )
    parser.add_argument("--cmkguard", required=True)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()

    moto_port, proxy_port = free_port(), free_port()
    moto = subprocess.Popen(
        [args.moto, "-H", "127.0.0.1", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", moto_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        Counting.upstream = ("127.0.0.1", moto_port)
        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), Counting)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()

        work = tempfile.mkdtemp(prefix="cmkguard-bench-")
        for name in ("config", "credentials"):
            open(os.path.join(work, name), "w").close()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": work,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy_port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.path.join(work, "config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(work, "credentials"),
        }
        policies = {}
        for name, actions in (("custodian", ""), ("custodian+tag", TAG_ACTION)):
            path = os.path.join(work, f"{name.replace('+', '-')}.yml")
            with open(path, "w") as f:
                f.write(POLICY.format(actions=actions))
            policies[name] = path

        for n in [int(s) for s in args.sizes.split(",")]:
            print(f"\n== {n} secrets ({n // 2} on the default key, {n - n // 2} on one customer managed key)")
            t = time.monotonic()
            make_world(moto_port, n)
            print(f"   made in {time.monotonic() - t:.1f} s")
            take_counts()
            results = {}

            def audit(name, extra):
                out = os.path.join(work, f"{name}-{n}.jsonl")
                with open(out, "w") as f:
                    wall, rss, code = run_measured(
                        [args.cmkguard, "audit", "--format", "json", "--region", REGION, *extra], env, f
                    )
                verdicts = Counter(json.loads(l)["verdict"] for l in open(out) if l.strip())
                flagged = verdicts.get("non_compliant", 0)
                results[name] = (wall, rss, take_counts(), f"{flagged} non_compliant, exit {code}")

            def custodian(name):
                out = os.path.join(work, f"out-{name.replace('+', '-')}-{n}")
                wall, rss, code = run_measured(
                    [args.custodian, "run", "-s", out, "--cache-period", "0", "--region", REGION, policies[name]],
                    env,
                    subprocess.DEVNULL,
                )
                try:
                    with open(os.path.join(out, "secrets-on-aws-managed-key", "resources.json")) as f:
                        matched = len(json.load(f))
                except OSError:
                    matched = "?"
                results[name] = (wall, rss, take_counts(), f"{matched} matched, exit {code}")

            if args.securityhub:
                audit("audit+tag", ["--apply", "--actions", "tag"])
                make_world(moto_port, n)
                take_counts()
                audit("audit+tag+securityhub", ["--apply", "--actions", "tag,securityhub"])
                print(f"   {'run':<22} {'wall s':>8} {'peak MiB':>9} {'requests':>9}  detail")
                for name in ("audit+tag", "audit+tag+securityhub"):
                    wall, rss, counts, detail = results[name]
                    ops = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
                    print(f"   {name:<22} {wall:>8.2f} {rss:>9.1f} {sum(counts.values()):>9}  {detail}; {ops}")
                imports = results["audit+tag+securityhub"][2].get("POST /findings/import", 0)
                ratio = results["audit+tag+securityhub"][0] / results["audit+tag"][0]
                print(f"   BatchImportFindings requests: {imports} (ceil(N/100) = {math.ceil(n / 100)})")
                print(f"   audit+tag+securityhub / audit+tag = {ratio:.2f}x (target <= 1.2x)")
                continue

            wall, listed = floor(proxy_port)
            results["floor"] = (wall, None, take_counts(), f"{listed} listed")
            audit("audit", [])
            custodian("custodian")
            audit("audit+tag", ["--apply", "--actions", "tag"])
            custodian("custodian+tag")

            print(f"   {'run':<14} {'wall s':>8} {'peak MiB':>9} {'requests':>9}  detail")
            for name in ("floor", "audit", "custodian", "audit+tag", "custodian+tag"):
                wall, rss, counts, detail = results[name]
                ops = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
                rss = "-" if rss is None else f"{rss:.1f}"
                print(f"   {name:<14} {wall:>8.2f} {rss:>9} {sum(counts.values()):>9}  {detail}; {ops}")
            r = {k: v[0] for k, v in results.items()}
            lists = results["audit"][2].get("ListSecrets", 0)
            keys = results["audit"][2].get("DescribeKey", 0)
            print(
                f"   audit: {lists} ListSecrets (ceil(N/100) = {math.ceil(n / 100)}), {keys} DescribeKey (1 distinct key)"
            )
            print(f"   custodian / audit          = {r['custodian'] / r['audit']:.1f}x")
            print(f"   audit / floor              = {r['audit'] / r['floor']:.2f}x")
            print(f"   custodian+tag / audit+tag  = {r['custodian+tag'] / r['audit+tag']:.1f}x")
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    main()
