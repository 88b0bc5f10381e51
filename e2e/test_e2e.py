#!/usr/bin/env python3
"""End-to-end test: tap-gleap where data engineers run it.

Run by scripts/e2e.sh (which makes the virtualenv, builds the binaries and
the wheel); not meant to be started by hand without the environment it sets
up:

  TAP_BIN, FAKE_BIN   copies of the release binaries of scripts/build.sh
  WHEEL               the prebuilt wheel of scripts/wheel.sh
  E2E_WORK            a scratch directory, emptied by the script
  CARGO_TARGET_DIR    the cargo target dir, shared by every build below

What it proves, against the bundled fake Gleap API on a free port:

1. Installation from the prebuilt wheel, where no Rust toolchain can be
   found (PATH without cargo or rustc, checked): the wheel is tagged
   manylinux_2_17_x86_64 and holds `tap-gleap` alone; `pip install <wheel>`
   into a fresh virtualenv puts a working `tap-gleap` on its PATH, the
   same program as the one built from this checkout.
2. Installation from source: `pip install <repo>` into a clean virtualenv
   (maturin builds the wheel with cargo) and `cargo install --path <repo>
   --root <tmp>` give a working `tap-gleap`, the same binary (one compile).
3. The Meltano plugin definition (meltano/meltano.yml) matches what the tap
   says of itself (`tap-gleap --about`): settings, secrets, capabilities.
4. The example Meltano project, with the tap's pip_url set to the wheel's
   path as a user's project would have it, installs with no Rust on PATH
   (the tap from the wheel, the targets from PyPI) and `meltano run
   tap-gleap TARGET` loads every record into three real targets:
   target-jsonl, target-duckdb and target-postgres (MeltanoLabs, into a
   PostgreSQL server started here). Each is checked in its own storage:
   line counts per file; row counts, unique keys, column types (timestamps,
   JSON) and values per table. The example project itself (pip_url: the
   repository) installs the tap from source too.
5. Meltano stored the state; the fake's data is changed through its control
   plane; the second run extracts only what changed (plus records at the
   bookmark boundary) and nothing is lost.
6. The README's cron recipe (a plain shell pipeline into target-jsonl, with
   the target's last STATE kept between runs), run with the wheel's
   tap-gleap and no Rust on PATH, does the same.
7. Stream maps and flattening: the tap with `stream_maps` / `flattening_*`
   in its config sends the same RECORDs and SCHEMA properties, key
   properties and stream names as the Meltano SDK's own mapper
   (meltano-map-transform from PyPI, pinned in e2e/requirements-mapper.txt)
   applied to the tap's plain output, for configs using every feature.
8. Deletions (issue 20): records created and read by an ordinary
   incremental run (run 3), then records deleted in the fake; run 4, with
   `reconcile_every` set (never reconciled: due), reads the incremental
   streams whole and sends ACTIVATE_VERSION: target-postgres marks the
   deleted rows `_sdc_deleted_at` and nothing else, rows written by run 3
   included; target-duckdb (pipelinewise-based) ignores ACTIVATE_VERSION,
   as the README says: its deleted rows stay. Meltano's state records
   each stream's reconciliation.

Ends with "N passed, N failed" and exits non-zero on any failure.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PROJECT_DIR = REPO / "meltano"
WORK = Path(os.environ["E2E_WORK"]).resolve()
TAP_BIN = Path(os.environ["TAP_BIN"]).resolve()
FAKE_BIN = Path(os.environ["FAKE_BIN"]).resolve()
WHEEL = Path(os.environ["WHEEL"]).resolve()
MAPPER_BIN = Path(os.environ["MAPPER_BIN"]).resolve()
VENV_BIN = Path(sys.executable).parent
MELTANO = str(VENV_BIN / "meltano")

API_KEY = "e2e-key-3b9f0d"
PROJECT = "e2e-project"
# The streams Meltano extracts with meltano/meltano.yml: every stream but the
# per-parent ones, which its `select` leaves out (as a sync without a catalog
# does: they cost a request per changed ticket or contact).
STREAMS = [
    "tickets",
    "sessions",
    "messages",
    "teams",
    "surveys",
    "survey_responses",
    "message_templates",
    "team_members",
    "helpcenter_collections",
    "helpcenter_articles",
    "helpcenter_redirects",
    "news",
    "engagement_banners",
    "engagement_chat_messages",
    "engagement_cobrowse",
    "engagement_emails",
    "engagement_product_tours",
    "engagement_push_notifications",
    "engagement_tooltips",
    "engagement_whatsapp_messages",
    "engagement_checklists",
    "engagement_modals",
    "custom_components",
]
# Checked absent from every target (not selected).
PER_PARENT = ["ticket_activity_logs", "session_activities", "session_events"]
INCREMENTAL = ["tickets", "sessions", "messages", "survey_responses", "helpcenter_articles"]
TARGETS = ["target-jsonl", "target-duckdb", "target-postgres"]
# The fake's data: enough for many pages at page_size 100, with ties
# (3 records per updatedAt) so that boundaries are real.
FAKE_ARGS = [
    "--tickets", "1200", "--sessions", "400", "--messages", "1500",
    "--teams", "4", "--surveys", "5", "--responses-per-survey", "40",
    "--message-templates", "6", "--tie-group", "3",
    "--team-members", "12", "--helpcenter-collections", "6", "--articles-per-collection", "5",
    "--news", "5", "--engagements-per-kind", "3", "--custom-components", "4",
]
# Between the two runs. bulk_update gives more records one updatedAt than a
# page holds (the tap's tie path); a deleted template tests ACTIVATE_VERSION.
MUTATIONS = [
    ("tickets", {"update": 40, "create": 15, "bulk_update": 150}),
    ("sessions", {"update": 10, "create": 5}),
    ("messages", {"update": 30, "create": 20}),
    ("survey_responses", {"update": 8, "create": 6}),
    ("teams", {"update": 1, "create": 1}),
    ("message_templates", {"update": 1, "create": 1, "delete": 1}),
    ("helpcenter_articles", {"update": 4, "create": 2}),
    ("news", {"update": 1, "create": 1}),
    ("engagement_banners", {"update": 1, "create": 1}),
    ("team_members", {"update": 1, "create": 1}),
    # Not extracted (not selected): their parents change, nothing else must.
    ("ticket_activity_logs", {"create": 3}),
]

# Round 3 (deletions): created before run 3 (an ordinary incremental run),
# then deleted before run 4 (the reconciling run).
CREATIONS = [
    ("tickets", {"create": 5, "update": 3}),
    ("sessions", {"create": 3}),
    ("messages", {"create": 5}),
    ("survey_responses", {"create": 2}),
]
DELETIONS = [
    ("tickets", {"delete": 4}),
    ("sessions", {"delete": 3}),
    ("messages", {"delete": 4}),
    ("survey_responses", {"delete": 2}),
    ("helpcenter_articles", {"delete": 1}),
]
RECONCILED = ["tickets", "sessions", "messages", "survey_responses", "helpcenter_articles"]
SQL_TARGETS = ["target-duckdb", "target-postgres"]

# --------------------------------------------------------------------------
# Reporting


class Abort(Exception):
    """A step failed and the steps after it cannot run."""


RESULTS: list[tuple[str, bool]] = []
TIMES: list[tuple[str, float]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((name, bool(ok)))
    if ok:
        print(f"  PASS {name}", flush=True)
    else:
        print(f"  FAIL {name}" + (f"\n       {detail}" if detail else ""), flush=True)
    return bool(ok)


def must(name: str, ok: bool, detail: str = "") -> None:
    if not check(name, ok, detail):
        raise Abort(name)


class step:
    """Times a step and prints its heading."""

    def __init__(self, title: str):
        self.title = title

    def __enter__(self):
        print(f"\n==> {self.title}", flush=True)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        took = time.monotonic() - self.t0
        TIMES.append((self.title, took))
        print(f"    ({took:.1f} s)", flush=True)
        return False


def run(cmd, *, log: Path | None = None, env=None, cwd=None, check_rc=True, shell=False, timeout=900):
    """Runs a command; output to `log` (or captured). Returns the CompletedProcess."""
    printable = cmd if shell else " ".join(str(c) for c in cmd)
    print(f"    $ {printable}", flush=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, shell=shell,
                               timeout=timeout, executable="/bin/bash" if shell else None)
        p.stdout = log.read_text(errors="replace")
    else:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, shell=shell,
                           timeout=timeout, executable="/bin/bash" if shell else None)
        p.stdout = (p.stdout or "") + (p.stderr or "")
    if check_rc and p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-40:])
        raise Abort(f"`{printable}` exited {p.returncode}" + (f" (log: {log})" if log else "") + f":\n{tail}")
    return p


# --------------------------------------------------------------------------
# Helpers


SAME_FILE_HINT = ("a stale build (uv caches a local project's wheel by the files in pyproject.toml's "
                  "[tool.uv] cache-keys), or maturin built it with other flags than `cargo install`")
RUST_TOOLS = ("cargo", "rustc", "rustup")


def no_rust_env() -> dict[str, str]:
    """This environment, without a Rust toolchain: PATH loses every directory that holds
    cargo, rustc or rustup (~/.cargo/bin here), and the variables that could point at one
    go. What a data engineer's machine looks like."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CARGO", "RUSTUP", "RUSTC")) and k not in ("RUSTFLAGS", "MATURIN_PEP517_ARGS")}
    dirs = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not any(os.access(os.path.join(d, t), os.X_OK) for t in RUST_TOOLS)]
    env["PATH"] = os.pathsep.join(dirs)
    return env


def same_file(a: Path, b: Path) -> bool:
    import filecmp

    return a.exists() and filecmp.cmp(a, b, shallow=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ts(s: str) -> dt.datetime:
    """RFC 3339 with Z → naive UTC datetime."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.timezone.utc).replace(tzinfo=None)


def as_naive_utc(v) -> dt.datetime | None:
    if v is None:
        return None
    if isinstance(v, str):
        return parse_ts(v)
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v


class Fake:
    def __init__(self):
        self.ready = WORK / "fake.url"
        self.log = open(WORK / "fake-gleap.log", "w")
        self.proc = subprocess.Popen(
            [str(FAKE_BIN), "--port", "0", "--ready-file", str(self.ready),
             "--api-key", API_KEY, "--project-id", PROJECT, *FAKE_ARGS],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.ready.exists() and self.ready.read_text().strip():
                break
            if self.proc.poll() is not None:
                raise Abort("fake-gleap exited at start: " + (WORK / "fake-gleap.log").read_text())
            time.sleep(0.1)
        else:
            raise Abort("fake-gleap did not write its ready file in 30 s")
        self.api_url = self.ready.read_text().strip()  # http://127.0.0.1:PORT/v3
        self.root = self.api_url.rsplit("/v3", 1)[0]

    def snapshot(self, stream: str) -> dict[str, str]:
        """id → updatedAt, from the fake's own store."""
        with urllib.request.urlopen(f"{self.root}/_fake/snapshot/{stream}") as r:
            lines = r.read().decode().splitlines()
        out = {}
        for line in lines:
            rec = json.loads(line)
            out[rec["id"]] = rec["updatedAt"]
        return out

    def mutate(self, stream: str, **counts) -> dict:
        q = "&".join(f"{k}={v}" for k, v in counts.items())
        req = urllib.request.Request(f"{self.root}/_fake/mutate?stream={stream}&{q}", method="POST")
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class Postgres:
    """A throwaway PostgreSQL server on a free loopback port."""

    def __init__(self):
        bindir = os.environ.get("PG_BINDIR") or self.find_bindir()
        if not bindir:
            raise Abort("no PostgreSQL server binaries (initdb, pg_ctl) found; "
                        "scripts/e2e.sh installs Debian's postgresql package when run as root")
        self.bindir = Path(bindir)
        self.data = Path(tempfile.mkdtemp(prefix="tap-gleap-e2e-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.data, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        run(self.as_user + [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                            "-U", "postgres", "--no-sync"], log=WORK / "logs" / "initdb.log")
        run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"),
                            "-w", "-t", "60", "-o",
                            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                            "-c synchronous_commit=off -c full_page_writes=off",
                            "start"], log=WORK / "logs" / "pg_ctl-start.log")
        self.started = True
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE gleap")

    @staticmethod
    def find_bindir() -> str | None:
        initdb = shutil.which("initdb")
        if initdb:
            return str(Path(os.path.realpath(initdb)).parent)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        return str(Path(found[-1]).parent) if found else None

    def dsn(self, db: str = "gleap") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def stop(self):
        if getattr(self, "started", False):
            subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                           "stop"], capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)


# --------------------------------------------------------------------------
# Reading each target's own storage. Every reader returns, per stream:
# rows: list of dicts (lower-cased column names), the table's column types.


def jsonl_lines(stream: str) -> list[dict]:
    p = WORK / "jsonl" / f"{stream}.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def sql_rows(target: str, pg: Postgres, stream: str) -> tuple[list[dict], dict[str, str]]:
    if target == "target-duckdb":
        import duckdb

        con = duckdb.connect(str(WORK / "warehouse.duckdb"), read_only=True)
        try:
            cols = {r[0].lower(): r[1].upper() for r in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'gleap' AND table_name = ?", [stream.lower()]).fetchall()}
            cur = con.execute(f'SELECT * FROM gleap."{stream.lower()}"')
            names = [d[0].lower() for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()
        return rows, cols
    import psycopg

    with psycopg.connect(pg.dsn()) as c:
        cols = {r[0].lower(): r[1].upper() for r in c.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'gleap' AND table_name = %s", [stream]).fetchall()}
        cur = c.execute(f'SELECT * FROM gleap."{stream}"')
        names = [d.name.lower() for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return rows, cols


def sql_has_table(target: str, pg: "Postgres", stream: str) -> bool:
    if target == "target-duckdb":
        import duckdb

        con = duckdb.connect(str(WORK / "warehouse.duckdb"), read_only=True)
        try:
            return bool(con.execute("SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_schema = 'gleap' AND table_name = ?", [stream.lower()]).fetchone()[0])
        finally:
            con.close()
    import psycopg

    with psycopg.connect(pg.dsn()) as c:
        return bool(c.execute("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_schema = 'gleap' AND table_name = %s", [stream]).fetchone()[0])


def schema_kinds(stream: str) -> dict[str, str]:
    """Column (lower-cased) → kind, from the tap's schema file."""
    s = json.loads((REPO / "schemas" / f"{stream}.json").read_text())
    out = {}
    for name, prop in s["properties"].items():
        t = prop.get("type")
        types = set(t if isinstance(t, list) else [t]) - {"null"}
        if prop.get("format") == "date-time":
            kind = "date-time"
        elif "object" in types:
            kind = "object"
        elif "array" in types:
            kind = "array"
        else:
            kind = next(iter(types)) if len(types) == 1 else "mixed"
        out[name.lower()] = kind
    if stream == "survey_responses":
        out.setdefault("survey_id", "string")
    return out


# What each SQL target should make of each kind.
SQL_TYPES = {
    "target-duckdb": {
        "date-time": {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE"},
        "object": {"JSON"},
        "array": {"JSON"},
        "integer": {"HUGEINT", "BIGINT", "INTEGER"},
        "number": {"DOUBLE", "DECIMAL"},
        "boolean": {"BOOLEAN"},
        "string": {"VARCHAR"},
    },
    "target-postgres": {
        "date-time": {"TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP WITH TIME ZONE"},
        "object": {"JSONB", "JSON"},
        "array": {"JSONB", "JSON", "ARRAY"},
        "integer": {"BIGINT", "INTEGER", "NUMERIC"},
        "number": {"NUMERIC", "DOUBLE PRECISION", "DECIMAL"},
        "boolean": {"BOOLEAN"},
        "string": {"TEXT", "CHARACTER VARYING"},
    },
}


# Fields the fake sends that no schema names (fake-gleap's
# undocumented_fields): schema evolution makes each a column. tickets'
# escalation first comes with ticket 99 (mid-stream: its SCHEMA follows
# records already loaded); linkedIssue is a string, then a number too (the
# SCHEMA is sent again, widened).
NEW_FIELDS = {
    "tickets": ["attachments", "linkedIssue", "escalation"],
    "sessions": ["project", "unsubscribeReason"],
    "messages": ["project"],
    "teams": ["project"],
    "surveys": ["project", "format"],
    "message_templates": ["project", "type", "lang"],
    "helpcenter_collections": ["lexorank"],
}


def json_value(v):
    """A JSON column's value as Python data; a str that is not JSON stays a str."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


# --------------------------------------------------------------------------
# Stream maps: the tap against the SDK's mapper (meltano-map-transform)

# Every feature of the SDK's stream maps, in expressions a user would write.
# (No arithmetic on floats nor json.dumps of them: meltano-map-transform
# reads numbers as Decimal, where an SDK tap has floats.)
EVERY_MAP = {
    "sessions": {
        "email": "md5(config['salt'] + email) if email else None",
        "email_domain": "email.split('@')[-1].lower() if email and '@' in email else None",
        "name_upper": "name.upper().strip() if name else ''",
        "phone": None,
        "id_sha": "sha256(id)",
        "paying": "plan in ('pro', 'enterprise') or False",
        "first_day": "datetime.datetime.fromisoformat(firstActivity).date() if firstActivity else None",
    },
    "tickets": {
        "__filter__": "status != 'DONE' and not (isSpam or False)",
        "title": "title.replace('slow', 'SLOW').strip() if title else title",
        "bug_plus": "int(bugId or 0) + 1",
        "bug_float": "float(bugId or 0)",
        "bug_text": "str(bugId)",
        "has_tags": "bool(tags)",
        "first_tag": "tags[0] if tags else None",
        "kind": "'bug' if type == 'BUG' else ('feature' if type == 'FEATURE_REQUEST' else 'other')",
        "label": "f'{type}/{priority}'",
        "api": "channel.startswith('a') and not channel.endswith('x') if channel else False",
        "year": "datetime.datetime.fromisoformat(createdAt).year if createdAt else None",
        "day": "datetime.datetime.fromisoformat(createdAt).strftime('%Y-%m-%d') if createdAt else None",
        "stream": "__stream_name__",
        "status": "self.lower() if self else self",
        "customData": None,
        "description": None,
    },
    "teams": {"__alias__": "gleap_teams", "members": "json.dumps(members)"},
    "ticket_ids": {
        "__source__": "tickets",
        "__else__": None,
        "id": "id",
        "status": "status",
        "updated": "record['updatedAt']",
        "__key_properties__": ["id"],
    },
    "message_templates": None,
    "surveys": {"__else__": None, "id": "id", "name": "(name or '') + ' (' + str(type) + ')'"},
    "survey_responses": {"__key_properties__": ["id", "survey_id"], "read": "bool(read)"},
}
# Many more expressions (Python's string methods, slices, arithmetic, dates,
# dicts and lists), each checked against the SDK's evaluation. (No str() of
# values holding floats: meltano-map-transform shows them as Decimal('...').)
EXPRESSIONS = {
    "tickets": {
        "s1": "title.title() if title else None",
        "s2": "title.capitalize() if title else None",
        "s3": "str(bugId).zfill(6)",
        "s4": "title.find('a') if title else -2",
        "s5": "title.count('e') if title else 0",
        "s6": "title.split(' ', 1) if title else []",
        "s7": "title.rsplit(' ', 1) if title else []",
        "s8": "title.partition(' ') if title else None",
        "s9": "title.removeprefix('Dash') if title else None",
        "s10": "title.center(40, '*') if title else None",
        "s11": "title.ljust(30, '-') if title else None",
        "s12": "title.rjust(30) if title else None",
        "s13": "title[::2] if title else None",
        "s14": "title[-5:-1] if title else None",
        "s15": "title[::-1] if title else None",
        "s16": "(tags or [])[::-1]",
        "s17": "tags == ['android']",
        "s18": "(tags or []) < ['b']",
        "s19": "formData.get('rating') if formData else None",
        "s20": "'rating' in (formData or {})",
        "s21": "list((formData or {}).keys())",
        "s23": "str(tags)",
        "s24": "title.swapcase() if title else None",
        "s25": "title.isalpha() if title else None",
        "s26": "title.lower().islower() if title else None",
        "s27": "' '.join(tags or [])",
        "s28": "(bugId or 0) % 7 - (bugId or 0) // 7",
        "s29": "2 ** ((bugId or 0) % 40) % 1000",
        "s30": "-(bugId or 0) // 3",
        "s31": "(upvotesCount or 0) / 3",
        "s33": "datetime.datetime.fromisoformat(updatedAt) - datetime.datetime.fromisoformat(createdAt) if createdAt and updatedAt else None",
        "s34": "(datetime.datetime.fromisoformat(createdAt) + datetime.timedelta(days=3, hours=1.5)).isoformat() if createdAt else None",
        "s35": "datetime.datetime.fromisoformat(createdAt).strftime('%a %d %b %Y %H:%M:%S %j %p %I %y %z') if createdAt else None",
        "s36": "datetime.datetime.fromisoformat(createdAt).weekday() if createdAt else None",
        "s37": "datetime.datetime.fromisoformat(createdAt).replace(tzinfo=None).isoformat(' ') if createdAt else None",
        "s38": "str(datetime.datetime.fromisoformat(createdAt).date()) if createdAt else None",
        "s39": "(datetime.datetime.fromisoformat(updatedAt) - datetime.datetime.fromisoformat(createdAt)).total_seconds() if createdAt and updatedAt else None",
        "s40": "datetime.datetime.strptime(createdAt[:19], '%Y-%m-%dT%H:%M:%S').timestamp() > 0 if createdAt else None",
        "s41": "json.dumps(tags)",
        "s42": "json.dumps({'t': title, 'n': bugId})",
        "s43": "dict(a=bugId, b=[1, (2, 3)])",
        "s44": "str((1, 'x', None))",
        "s45": "str({'a': [True, None], 1: 'b'})",
        "s47": "float(str(bugId) + '.25')",
        "s48": "int(' 42 ')",
        "s49": "int('0x1f', 16)",
        "s50": "str(2 ** 62)",
        "s51": "str(10 / 4)",
        "s52": "str(1e22)",
        "s53": "str(123456.789e3)",
        "s54": "bool('') or bool([]) or 'x'",
        "s55": "status in ('OPEN', 'CLOSED') and priority not in ['LOW']",
        "s56": "bugId is None",
        "s57": "bugId is not None",
        "s58": "not not title",
        "s61": "title.strip('D') if title else None",
        "s62": "title.endswith(('w', 'x')) if title else None",
        "s63": "customData.get('flags', {}).get('beta') if customData else None",
        "s64": "metaData['screen']['pixelRatio'] if metaData else None",
        "s68": "int(score) if score else None",
        "s69": "score > 5 if score is not None else None",
        "s70": "upvotesCount * 1.1",
        "s71": "str(upvotesCount * 1.1)"
    },
    "sessions": {
        "a": "name.upper() if name else None",
        "b": "name.title() if name else None",
        "c": "name.lower().split()[::-1] if name else None",
        "d": "email.split('@')[0].replace('.', '_') if email else None",
        "e": "record.get('location').split(', ')[-1] if record.get('location') else None",
        "g": "value > 1000 if value is not None else None",
        "h": "customData.get('note') if customData else None",
        "j": "lastPageView.startswith('/dashboard') if lastPageView else None",
        "k": "str(tags)",
        "l": "(tags or [''])[0].upper()",
        "n": "sha256(name or '')",
        "o": "name.casefold() if name else None",
        "p": "lang == 'ja' or lang == 'de'",
        "q": "f'{name} <{email}>'",
        "r": "str(sessions) + '/' + str(sla)",
        "s": "int(value or 0) // 100 * 100"
    },
    "survey_responses": {
        "b": "responses.get('q1', '').upper()[:10] if responses else None",
        "c": "'q1' in (responses or {})",
        "d": "json.dumps(responses.get('q1')) if responses else None",
        "e": "str(read) + str(survey_id)[-4:]"
    },
    "teams": {
        "a": "str(members)",
        "b": "', '.join(members or [])",
        "c": "members[-1] if members else None",
        "d": "str(ticketAmount)"
    },
    "messages": {
        "b": "data.get('content') if data else None",
        "c": "str(attachments)",
        "d": "channel.get('type') if channel else None"
    },
    "surveys": {
        "b": "name.upper()",
        "c": "name.lower()",
        "d": "name.split('–')"
    },
    "team_members": {
        "full": "f'{firstName} {lastName}'",
        "domain": "email.split('@')[-1] if email else None"
    },
    "helpcenter_collections": {
        "title_en": "title.get('en') if title else None",
        "langs": "list((title or {}).keys())",
        "sub": "parent is not None"
    },
    "helpcenter_articles": {
        "title_de": "(title or {}).get('de', '')",
        "c": "collection_id[-4:]"
    },
    "engagement_product_tours": {
        "first_step": "steps[0].get('title') if steps else None"
    }
}
MAP_CONFIGS = {
    "stream maps": {"stream_maps": EVERY_MAP, "stream_map_config": {"salt": "e2e-salt"}},
    # (meltano-map-transform requires stream_maps; empty, it maps nothing.)
    "expressions": {"stream_maps": EXPRESSIONS},
    "flattening": {"stream_maps": {}, "flattening_enabled": True, "flattening_max_depth": 1},
    "stream maps then flattening": {
        "stream_maps": {
            "tickets": {"__filter__": "bugId and bugId % 3 == 0", "whole": "record", "customData": None},
            "sessions": {"email": "md5(email) if email else None"},
            "teams": {"__alias__": "'gleap_' + __stream_name__"},
        },
        "flattening_enabled": True,
        "flattening_max_depth": 3,
    },
}


def singer_summary(text: str) -> dict:
    """Per stream: its SCHEMA's properties and key properties, its RECORDs (sorted)."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        m = json.loads(line)
        if m["type"] == "SCHEMA":
            e = out.setdefault(m["stream"], {"records": []})
            e["properties"] = m["schema"].get("properties")
            e["key_properties"] = m.get("key_properties") or []
        elif m["type"] == "RECORD":
            out.setdefault(m["stream"], {"records": []})["records"].append(m["record"])
    for e in out.values():
        e["records"].sort(key=lambda r: json.dumps(r, sort_keys=True))
    return out


def first_difference(a: list, b: list) -> str:
    for x, y in zip(a, b):
        if x != y:
            keys = sorted(k for k in set(x) | set(y) if x.get(k, "<absent>") != y.get(k, "<absent>"))
            return "; ".join(f"{k}: tap {x.get(k, '<absent>')!r:.120} vs mapper {y.get(k, '<absent>')!r:.120}"
                             for k in keys[:4])
    return f"{len(a)} records vs {len(b)}"


# --------------------------------------------------------------------------
# The test


class E2E:
    def __init__(self):
        self.fake: Fake | None = None
        self.pg: Postgres | None = None
        self.snap1: dict[str, dict[str, str]] = {}
        self.snap2: dict[str, dict[str, str]] = {}
        self.deleted: dict[str, set[str]] = {}
        # Extra tap settings for the runs (round 3's reconciling run).
        self.tap_env: dict[str, str] = {}
        self.state1: dict[str, dict] = {}
        self.jsonl_count1: dict[str, int] = {}
        self.run2_start: dt.datetime | None = None
        self.wheel_tap: Path | None = None
        self.source_tap: Path | None = None
        # The example project with the tap's pip_url set to the wheel, where the runs happen.
        self.project = WORK / "meltano"

    # ---- environment for Meltano
    def meltano_env(self, project: Path) -> dict[str, str]:
        # In the project that installs the wheel, Meltano (and the uv and pip it runs)
        # could not build the tap if it tried: no Rust on PATH.
        env = no_rust_env() if project == self.project else dict(os.environ)
        env.update({
            "MELTANO_DATABASE_URI": f"sqlite:///{WORK}/meltano-{project.name}.db",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_ENVIRONMENT": "dev",
            "TAP_GLEAP_API_URL": self.fake.api_url if self.fake else "",
            "TAP_GLEAP_API_KEY": API_KEY,
            "TAP_GLEAP_PROJECT_ID": PROJECT,
            "TAP_GLEAP_PAGE_SIZE": "100",
            "TAP_GLEAP_REQUESTS_PER_MINUTE": "6000",
            "TAP_GLEAP_EMIT_ACTIVATE_VERSION_MESSAGES": "true",
            **self.tap_env,
            "TARGET_JSONL_DESTINATION_PATH": str(WORK / "jsonl"),
            "TARGET_DUCKDB_FILEPATH": str(WORK / "warehouse.duckdb"),
        })
        if self.pg:
            env.update({
                "TARGET_POSTGRES_HOST": "127.0.0.1",
                "TARGET_POSTGRES_PORT": str(self.pg.port),
                "TARGET_POSTGRES_USER": "postgres",
                "TARGET_POSTGRES_PASSWORD": "unused-trust-auth",
                "TARGET_POSTGRES_DATABASE": "gleap",
            })
        return env

    def meltano(self, *args, log: Path | None = None, check_rc=True, project: Path | None = None):
        project = project or self.project
        return run([MELTANO, *args], log=log, env=self.meltano_env(project), cwd=project, check_rc=check_rc)

    # ---- 1. installation
    def test_install(self):
        cargo_version = next(line.split('"')[1] for line in (REPO / "Cargo.toml").read_text().splitlines()
                             if line.startswith("version"))
        want = f"tap-gleap {cargo_version}"
        about = run([str(TAP_BIN), "--about"]).stdout
        with step("an environment without Rust: PATH with no cargo, rustc or rustup"):
            env = no_rust_env()
            found = {t: shutil.which(t, path=env["PATH"]) for t in RUST_TOOLS}
            must("no-Rust PATH: cargo, rustc and rustup are not found", not any(found.values()), str(found))
            p = run(["bash", "-c", "command -v cargo || command -v rustc || command -v rustup"], env=env,
                    check_rc=False)
            must("no-Rust PATH: the shell does not find them either (`command -v cargo` fails)",
                 p.returncode != 0 and not p.stdout.strip(), p.stdout)
            print(f"    PATH={env['PATH']}")
        with step(f"the prebuilt wheel: {WHEEL.name}"):
            import zipfile

            tag = WHEEL.name[:-len(".whl")].split("-")[4]
            check("wheel: tagged manylinux_2_17_x86_64 (py3-none: any Python 3)",
                  "manylinux_2_17_x86_64" in tag.split(".") and WHEEL.name.startswith(
                      f"tap_gleap-{cargo_version}-py3-none-"), WHEEL.name)
            names = zipfile.ZipFile(WHEEL).namelist()
            payload = [n for n in names if not n.startswith(f"tap_gleap-{cargo_version}.dist-info/")]
            check("wheel: holds tap-gleap alone (no fake-gleap, no Python code)",
                  payload == [f"tap_gleap-{cargo_version}.data/scripts/tap-gleap"], str(names))
            print(f"    {WHEEL.stat().st_size / 1e6:.1f} MB")
        with step("pip install <wheel> into a fresh virtualenv, no Rust on PATH"):
            venv = WORK / "venv-wheel"
            run([sys.executable, "-m", "venv", str(venv)], env=env)
            # --no-index: nothing from PyPI, nothing to build; the wheel has no dependencies.
            run([str(venv / "bin" / "pip"), "install", "--no-index", "--no-cache-dir",
                 "--disable-pip-version-check", str(WHEEL)], env=env, log=WORK / "logs" / "pip-install-wheel.log")
            venv_env = dict(env, PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
            v = run(["bash", "-c", "tap-gleap --version"], env=venv_env, check_rc=False)
            check("wheel install: tap-gleap on the venv's PATH and --version answers",
                  v.returncode == 0 and v.stdout.strip() == want,
                  f"got {v.returncode}: {v.stdout.strip()!r}, want {want!r}")
            a = run(["bash", "-c", "tap-gleap --about"], env=venv_env, check_rc=False)
            check("wheel install: `tap-gleap --about` is the same as from this checkout's cargo build",
                  a.returncode == 0 and a.stdout == about, a.stdout[-500:])
            check("wheel install: no fake-gleap", not (venv / "bin" / "fake-gleap").exists())
            self.wheel_tap = venv / "bin" / "tap-gleap"
        with step("pip install <repo> into a clean virtualenv (from source: maturin builds a wheel with cargo)"):
            venv = WORK / "venv-pip"
            run([sys.executable, "-m", "venv", str(venv)])
            run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", str(REPO)],
                log=WORK / "logs" / "pip-install.log")
            exe = venv / "bin" / "tap-gleap"
            v = run([str(exe), "--version"], check_rc=False)
            check("pip install: tap-gleap on the venv's PATH and --version answers", v.returncode == 0
                  and v.stdout.strip() == want, f"got {v.returncode}: {v.stdout.strip()!r}, want {want!r}")
            a = run(["bash", "-c", f"PATH={venv}/bin:/usr/bin:/bin tap-gleap --about"], check_rc=False)
            check("pip install: `tap-gleap --about` through PATH, the same as from this checkout's cargo build",
                  a.returncode == 0 and a.stdout == about, a.stdout[-500:])
            check("pip install: the wheel ships tap-gleap only (no fake-gleap)",
                  not (venv / "bin" / "fake-gleap").exists())
            self.source_tap = exe
        with step("cargo install --path <repo> --root <tmp>"):
            root = WORK / "cargo-root"
            run(["cargo", "install", "--locked", "--path", str(REPO), "--root", str(root)],
                log=WORK / "logs" / "cargo-install.log")
            v = run([str(root / "bin" / "tap-gleap"), "--version"], check_rc=False)
            check("cargo install: tap-gleap --version answers", v.returncode == 0 and v.stdout.strip() == want,
                  f"got {v.returncode}: {v.stdout.strip()!r}, want {want!r}")
            check("cargo install: the very binary pip built from source (one compile for both)",
                  same_file(root / "bin" / "tap-gleap", self.source_tap), SAME_FILE_HINT)

    # ---- 2. plugin definition
    def test_plugin_definition(self):
        with step("Meltano plugin definition matches `tap-gleap --about`"):
            about = json.loads(run([str(TAP_BIN), "--about"]).stdout)
            project = yaml.safe_load((PROJECT_DIR / "meltano.yml").read_text())
            plugin = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-gleap")
            check("plugin: namespace tap_gleap, executable tap-gleap",
                  plugin.get("namespace") == "tap_gleap" and plugin.get("executable") == "tap-gleap")
            check("plugin: capabilities are the tap's", sorted(plugin.get("capabilities", []))
                  == sorted(about["capabilities"]), f"{plugin.get('capabilities')} vs {about['capabilities']}")
            props = about["settings"]["properties"]
            defined = {s["name"]: s for s in plugin.get("settings", [])}
            check("plugin: every setting of --about is declared, and no other",
                  set(defined) == set(props), f"{sorted(defined)} vs {sorted(props)}")
            kinds = {"string": {"string", "date_iso8601", "options"}, "integer": {"integer"}, "boolean": {"boolean"},
                     "object": {"object"}}
            bad = [n for n, p in props.items() if n in defined and defined[n].get("kind") not in kinds[p["type"]]]
            check("plugin: every setting's kind fits its type", not bad, f"wrong kind: {bad}")
            secret = sorted(n for n, p in props.items() if p.get("secret"))
            sensitive = sorted(n for n, s in defined.items() if s.get("sensitive"))
            check("plugin: secrets (api_key) are sensitive", secret == sensitive and "api_key" in sensitive,
                  f"secret {secret}, sensitive {sensitive}")
            check("plugin: every setting has a description", all(s.get("description") for s in defined.values()))

    # ---- 3. Meltano install, services
    def start_services(self):
        with step("start the fake Gleap API and PostgreSQL"):
            self.fake = Fake()
            print(f"    fake Gleap API at {self.fake.api_url}")
            self.pg = Postgres()
            print(f"    PostgreSQL at 127.0.0.1:{self.pg.port} (data {self.pg.data})")
            for s in STREAMS:
                self.snap1[s] = self.fake.snapshot(s)
            print("    fake's records: " + ", ".join(f"{s} {len(self.snap1[s])}" for s in STREAMS))

    def make_wheel_project(self) -> None:
        """The example project as a user's project with the wheel: meltano.yml with the tap's
        pip_url set to the wheel's path (a release URL would do the same), the targets'
        constraint files beside it."""
        text = (PROJECT_DIR / "meltano.yml").read_text()
        source_url = "    pip_url: ${MELTANO_PROJECT_ROOT}/..\n"
        must("meltano.yml: the tap's pip_url is the repository (one line to point at the wheel)",
             text.count(source_url) == 1, "no line `pip_url: ${MELTANO_PROJECT_ROOT}/..` in meltano/meltano.yml")
        self.project.mkdir(parents=True)
        (self.project / "meltano.yml").write_text(text.replace(source_url, f"    pip_url: {WHEEL}\n"))
        shutil.copytree(PROJECT_DIR / "requirements", self.project / "requirements")
        plugin = next(p for p in yaml.safe_load((self.project / "meltano.yml").read_text())["plugins"]["extractors"]
                      if p["name"] == "tap-gleap")
        print(f"    {self.project / 'meltano.yml'}: tap-gleap pip_url: {plugin['pip_url']}")

    def test_meltano_install(self):
        with step("meltano install with no Rust on PATH (tap-gleap from the wheel via pip_url; targets from PyPI)"):
            self.make_wheel_project()
            self.meltano("install", log=WORK / "logs" / "meltano-install.log")
            for t in TARGETS:
                must(f"meltano install: {t} installed",
                     (self.project / ".meltano" / "loaders" / t / "venv" / "bin" / t).exists())
            exe = self.project / ".meltano" / "extractors" / "tap-gleap" / "venv" / "bin" / "tap-gleap"
            must("meltano install: tap-gleap installed from the wheel (pip_url)", exe.exists())
            v = run([str(exe), "--version"], check_rc=False)
            check("meltano install: its tap-gleap runs", v.returncode == 0, v.stdout)
            check("meltano install: its tap-gleap is the wheel's", same_file(exe, self.wheel_tap))
            c = self.meltano("config", "list", "tap-gleap", check_rc=False)
            check("meltano config list tap-gleap: api_key is redacted", c.returncode == 0
                  and API_KEY not in c.stdout and "(redacted)" in c.stdout, c.stdout[-800:])
        with step("meltano install tap-gleap in meltano/ itself (pip_url: the repository, a source build)"):
            self.meltano("install", "tap-gleap", project=PROJECT_DIR, log=WORK / "logs" / "meltano-install-source.log")
            exe = PROJECT_DIR / ".meltano" / "extractors" / "tap-gleap" / "venv" / "bin" / "tap-gleap"
            must("meltano install (source): tap-gleap installed from pip_url", exe.exists())
            v = run([str(exe), "--version"], check_rc=False)
            check("meltano install (source): its tap-gleap runs", v.returncode == 0, v.stdout)
            check("meltano install (source): its tap-gleap is the one just built from this checkout",
                  same_file(exe, self.source_tap), SAME_FILE_HINT)

    # ---- 6. stream maps and flattening against the SDK's mapper
    def test_stream_maps(self):
        with step("stream maps and flattening: the tap vs meltano-map-transform (the SDK's mapper) on its plain output"):
            d = WORK / "maps"
            d.mkdir(exist_ok=True)
            base = {"api_key": API_KEY, "project_id": PROJECT, "api_url": self.fake.api_url,
                    "page_size": 100, "requests_per_minute": 6000, "emit_activate_version_messages": True}
            (d / "base.json").write_text(json.dumps(base))
            plain = run(f"{TAP_BIN} --config {d / 'base.json'} > {d / 'plain.jsonl'} 2>{d / 'plain.log'}",
                        shell=True, check_rc=False)
            must("maps: the plain sync succeeds", plain.returncode == 0, (d / "plain.log").read_text()[-800:])
            for name, maps in MAP_CONFIGS.items():
                slug = name.replace(" ", "-")
                (d / f"{slug}.json").write_text(json.dumps(maps))
                tap = run(f"{TAP_BIN} --config {d / 'base.json'} --config {d / f'{slug}.json'} "
                          f"> {d / f'{slug}-tap.jsonl'} 2>{d / f'{slug}-tap.log'}", shell=True, check_rc=False)
                ref = run(f"{MAPPER_BIN} --config {d / f'{slug}.json'} < {d / 'plain.jsonl'} "
                          f"> {d / f'{slug}-mapper.jsonl'} 2>{d / f'{slug}-mapper.log'}", shell=True, check_rc=False)
                if not (check(f"maps ({name}): the tap with the maps in its config succeeds", tap.returncode == 0,
                              (d / f"{slug}-tap.log").read_text()[-800:])
                        and check(f"maps ({name}): meltano-map-transform maps the plain output", ref.returncode == 0,
                                  (d / f"{slug}-mapper.log").read_text()[-800:])):
                    continue
                got = singer_summary((d / f"{slug}-tap.jsonl").read_text())
                want = singer_summary((d / f"{slug}-mapper.jsonl").read_text())
                # The SDK's mapper also sends a SCHEMA for a stream mapped to
                # null (an SDK tap does not, nor does tap-gleap): compare the
                # streams that carry records.
                sent = {s for s, e in got.items() if e["records"]}
                want_sent = {s for s, e in want.items() if e["records"]}
                check(f"maps ({name}): the same streams ({len(want_sent)})", sent == want_sent,
                      f"tap {sorted(sent)} vs mapper {sorted(want_sent)}")
                for s in sorted(sent & want_sent):
                    g, w = got[s], want[s]
                    check(f"maps ({name}): {s}: the same {len(w['records'])} RECORDs",
                          g["records"] == w["records"], first_difference(g["records"], w["records"]))
                    check(f"maps ({name}): {s}: the same SCHEMA properties",
                          g.get("properties") == w.get("properties"),
                          "; ".join(f"{k}: {g['properties'].get(k)} vs {w['properties'].get(k)}"
                                    for k in sorted(set(g.get("properties") or {}) | set(w.get("properties") or {}))
                                    if (g.get("properties") or {}).get(k) != (w.get("properties") or {}).get(k))[:600])
                    check(f"maps ({name}): {s}: the same key properties",
                          g.get("key_properties") == w.get("key_properties"),
                          f"{g.get('key_properties')} vs {w.get('key_properties')}")

    # ---- runs
    def meltano_run(self, target: str, n: int):
        log = WORK / "logs" / f"run{n}-{target}.log"
        p = self.meltano("run", "tap-gleap", target, log=log, check_rc=False)
        ok = check(f"run {n}: `meltano run tap-gleap {target}` succeeds", p.returncode == 0,
                   f"exit {p.returncode}; log {log}:\n" + "\n".join(p.stdout.splitlines()[-30:]))
        check(f"run {n} {target}: the API key shows nowhere in Meltano's output", API_KEY not in p.stdout)
        return ok

    def meltano_state(self, target: str) -> dict | None:
        state_id = f"dev:tap-gleap-to-{target}"
        lst = self.meltano("state", "list", check_rc=False)
        if not check(f"meltano state list: has {state_id}", state_id in lst.stdout, lst.stdout[-800:]):
            return None
        g = self.meltano("state", "get", state_id, check_rc=False)
        try:
            start = g.stdout.index("{")
            value = json.loads(g.stdout[start:g.stdout.rindex("}") + 1])
        except ValueError:
            check(f"meltano state get {state_id}: JSON", False, g.stdout[-800:])
            return None
        return value.get("singer_state", value)

    def check_state(self, target: str, snap: dict[str, dict[str, str]], n: int) -> dict | None:
        st = self.meltano_state(target)
        if st is None:
            return None
        bm = st.get("bookmarks", {})
        for s in INCREMENTAL:
            b = bm.get(s, {})
            values = ([p.get("replication_key_value") for p in b.get("partitions", [])]
                      if "partitions" in b else [b.get("replication_key_value")])
            values = [v for v in values if v]
            want = max(snap[s].values(), key=parse_ts)
            got = max(values, key=parse_ts) if values else None
            # The bookmark is the newest updatedAt, held back by the settle
            # window (lookback_window_seconds, 300 s): no more than the
            # window (and the run's own length) below the newest record.
            window = dt.timedelta(seconds=300)
            ok = got is not None and (
                parse_ts(want) - window - dt.timedelta(seconds=120) <= parse_ts(got) <= parse_ts(want))
            check(f"run {n} {target}: Meltano's stored state has {s}'s bookmark at its newest updatedAt, or the settle window below",
                  ok, f"bookmark {got}, newest record {want}")
            looks = ([p.get("lookback", {}) for p in b.get("partitions", [])]
                     if "partitions" in b else [b.get("lookback", {})])
            check(f"run {n} {target}: Meltano's stored state keeps {s}'s settle window",
                  any(lb.get("window_seconds") == 300 for lb in looks), json.dumps(b)[:400])
        return st

    # ---- round 1
    def round1(self):
        with step("run 1: meltano run tap-gleap TARGET, for each target (full extraction)"):
            for t in TARGETS:
                t0 = time.monotonic()
                self.meltano_run(t, 1)
                TIMES.append((f"  meltano run tap-gleap {t} (run 1)", time.monotonic() - t0))
        with step("run 1: every record in every target's storage"):
            self.check_jsonl(1)
            for t in ("target-duckdb", "target-postgres"):
                self.check_sql(t, 1)
            for t in TARGETS:
                st = self.check_state(t, self.snap1, 1)
                if st is not None:
                    self.state1[t] = st

    def check_jsonl(self, n: int):
        snap = self.snap1 if n == 1 else self.snap2
        for s in PER_PARENT:
            check(f"run {n} target-jsonl: {s} not extracted (left out by meltano.yml's select)",
                  not jsonl_lines(s), f"{len(jsonl_lines(s))} lines")
        for s in STREAMS:
            lines = jsonl_lines(s)
            if n == 1:
                self.jsonl_count1[s] = len(lines)
                ids = [r["id"] for r in lines]
                # Every record, and a record twice only as a duplicate of
                # the same version: slices may both read a record at their
                # boundary (which ones depends on the scheduling), fewer
                # than a page (100) of them; target-jsonl appends both.
                versions = {}
                for r in lines:
                    versions.setdefault(r["id"], set()).add(r.get("updatedAt"))
                extra = len(lines) - len(versions)
                check(f"run 1 target-jsonl: {s}.jsonl has every record ({len(snap[s])}), "
                      f"a few boundary duplicates at most",
                      set(ids) == set(snap[s]) and 0 <= extra < 100
                      and all(len(v) == 1 for v in versions.values()),
                      f"{len(lines)} lines, {len(set(ids))} ids ({extra} duplicated); "
                      f"fake has {len(snap[s])}; missing {sorted(set(snap[s]) - set(ids))[:5]}")
                new = lines
            else:
                new = lines[self.jsonl_count1.get(s, 0):]
                self.check_second_extraction("target-jsonl", s, [r["id"] for r in new])
            # Nothing lost: the last line per id carries the fake's updatedAt.
            latest = {}
            for r in lines:
                latest[r["id"]] = r.get("updatedAt")
            stale = [i for i, ua in snap[s].items()
                     if i not in latest or (ua and latest[i] and parse_ts(latest[i]) != parse_ts(ua))]
            check(f"run {n} target-jsonl: {s}: every record of the fake is there, latest version",
                  not stale, f"{len(stale)} missing or stale, e.g. {stale[:5]}")

    def check_second_extraction(self, target: str, s: str, ids: list[str]):
        """Run 2 extracted what changed, plus boundary records, for incremental streams;
        everything for full-table streams."""
        got = set(ids)
        if s not in INCREMENTAL:
            check(f"run 2 {target}: {s} (full table) extracted whole ({len(self.snap2[s])})",
                  got == set(self.snap2[s]), f"got {len(got)}")
            return
        changed = {i for i, ua in self.snap2[s].items() if self.snap1[s].get(i) != ua}
        missing = changed - got
        extra = got - changed
        st = self.state1.get(target, {}).get("bookmarks", {}).get(s, {})
        marks = {parse_ts(p["replication_key_value"]) for p in st.get("partitions", [st])
                 if p.get("replication_key_value")}
        not_boundary = sorted(i for i in extra if parse_ts(self.snap2[s][i]) not in marks)
        check(f"run 2 {target}: {s}: all {len(changed)} changed records extracted",
              not missing, f"missing {len(missing)}: {sorted(missing)[:5]}")
        check(f"run 2 {target}: {s}: nothing else but {len(extra)} boundary record(s) at the bookmark",
              not not_boundary and len(extra) <= 50,
              f"{len(not_boundary)} unchanged records re-extracted off the boundary, e.g. {not_boundary[:5]}")

    def check_sql(self, target: str, n: int):
        snap = self.snap1 if n == 1 else self.snap2
        for s in PER_PARENT:
            try:
                present = sql_has_table(target, self.pg, s)
            except Exception as e:  # noqa: BLE001
                check(f"run {n} {target}: information_schema readable", False, f"{type(e).__name__}: {e}")
                break
            check(f"run {n} {target}: no table gleap.{s} (left out by meltano.yml's select)", not present)
        for s in STREAMS:
            try:
                rows, cols = sql_rows(target, self.pg, s)
            except Exception as e:  # noqa: BLE001
                check(f"run {n} {target}: table gleap.{s} readable", False, f"{type(e).__name__}: {e}")
                continue
            deleted_ids = self.deleted.get(s, set()) if n == 2 else set()
            ids = [r["id"] for r in rows]
            check(f"run {n} {target}: {s}: primary keys unique", len(ids) == len(set(ids)),
                  f"{len(ids)} rows, {len(set(ids))} ids")
            extra = set(ids) - set(snap[s]) - deleted_ids
            missing = set(snap[s]) - set(ids)
            check(f"run {n} {target}: {s}: row count equals the fake's ({len(snap[s])})",
                  not missing and not extra and len(set(ids) - deleted_ids) == len(snap[s]),
                  f"{len(rows)} rows; missing {len(missing)} {sorted(missing)[:3]}; extra {len(extra)}")
            by_id = {r["id"]: r for r in rows}
            stale = [i for i, ua in snap[s].items()
                     if i in by_id and as_naive_utc(by_id[i].get("updatedat")) != parse_ts(ua)]
            check(f"run {n} {target}: {s}: updatedAt loaded as the same instant as the fake's",
                  not stale, f"{len(stale)} differ, e.g. {stale[:1]}: "
                  f"{by_id[stale[0]].get('updatedat')!r} vs {snap[s][stale[0]]}" if stale else "")
            if n == 1:
                self.check_sql_types(target, s, rows, cols)
                self.check_new_fields(target, s, rows, cols)
            if n == 2 and deleted_ids and target == "target-postgres":
                gone = [i for i in deleted_ids if i in by_id and by_id[i].get("_sdc_deleted_at") is None]
                live = [i for i in snap[s] if by_id.get(i, {}).get("_sdc_deleted_at") is not None]
                check(f"run 2 {target}: {s}: ACTIVATE_VERSION soft-deleted the record deleted in Gleap",
                      not gone and not live, f"not marked: {gone}; wrongly marked: {live[:3]}")
            if n == 2 and s in INCREMENTAL:
                # Rows (re)written by run 2: their extraction time is after run 2 began.
                col = "_sdc_extracted_at"
                if col in cols:
                    again = [r["id"] for r in rows if r.get(col) and as_naive_utc(r[col]) >= self.run2_start]
                    self.check_second_extraction(target, s, again)

    def check_new_fields(self, target: str, s: str, rows: list[dict], cols: dict[str, str]):
        """Schema evolution: every field the fake sends beyond the schemas is a column with its
        values, including one first sent mid-stream and one whose type widens (the repeated
        SCHEMA accepted: target-duckdb is pipelinewise-based, target-postgres SDK-based)."""
        for f in NEW_FIELDS.get(s, []):
            col = f.lower()
            values = [r.get(col) for r in rows if r.get(col) is not None]
            check(f"run 1 {target}: {s}.{f} (in no schema) is a column holding its values",
                  col in cols and values, f"column {cols.get(col)}, {len(values)} values")
        if s == "tickets" and "linkedissue" in cols:
            values = {str(r.get("linkedissue")) for r in rows if r.get("linkedissue") is not None}
            numbers = [v for v in values if v.isdigit()]
            check(f"run 1 {target}: tickets.linkedIssue holds both its strings and its numbers ({cols['linkedissue']})",
                  numbers and any(v.startswith("GLEAP-") for v in values), f"{sorted(values)[:5]}")
            print(f"    {target}: new columns of tickets: " + ", ".join(
                f"{f} {cols.get(f.lower())}" for f in NEW_FIELDS["tickets"]))

    def check_sql_types(self, target: str, s: str, rows: list[dict], cols: dict[str, str]):
        kinds = schema_kinds(s)
        wrong = []
        for name, kind in kinds.items():
            t = cols.get(name)
            allowed = SQL_TYPES[target].get(kind, set())
            if t is None or (t not in allowed and not any(t.startswith(a) for a in allowed)):
                wrong.append(f"{name} ({kind}) -> {t}")
        check(f"run 1 {target}: {s}: column types follow the schema (timestamps, JSON, numbers)",
              not wrong, "; ".join(wrong))
        if s == "tickets":
            seen = sorted({f"{k} -> {cols.get(n)}" for n, k in kinds.items()})
            print(f"    {target} column types: " + ", ".join(seen))
        # JSON columns hold JSON objects / arrays, not strings of JSON.
        bad = []
        for name, kind in kinds.items():
            if kind not in ("object", "array"):
                continue
            for r in rows:
                v = r.get(name)
                if v is None:
                    continue
                v = json_value(v)
                if not isinstance(v, dict if kind == "object" else list):
                    bad.append(f"{name}={str(r.get(name))[:60]!r}")
                    break
        check(f"run 1 {target}: {s}: JSON columns hold JSON {'objects/arrays'}", not bad, "; ".join(bad))

    # ---- mutate, round 2
    def mutate(self):
        with step("change the fake's data through /_fake/mutate"):
            for s, counts in MUTATIONS:
                r = self.fake.mutate(s, **counts)
                self.deleted[s] = set(r.get("deleted", []))
                print(f"    {s}: updated {len(r['updated'])}, created {len(r['created'])}, "
                      f"deleted {len(r['deleted'])}")
            for s in STREAMS:
                self.snap2[s] = self.fake.snapshot(s)
            # A full second's margin: run 2's extraction times are after it.
            self.run2_start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
            time.sleep(1.1)

    def round2(self):
        with step("run 2: meltano run tap-gleap TARGET again (incremental, from Meltano's state)"):
            for t in TARGETS:
                t0 = time.monotonic()
                self.meltano_run(t, 2)
                TIMES.append((f"  meltano run tap-gleap {t} (run 2)", time.monotonic() - t0))
        with step("run 2: only what changed was extracted, and nothing is lost"):
            self.check_jsonl(2)
            for t in ("target-duckdb", "target-postgres"):
                self.check_sql(t, 2)
            for t in TARGETS:
                self.check_state(t, self.snap2, 2)

    # ---- round 3: deletions reach the warehouse
    def round3(self):
        with step("run 3: records created in the fake, an ordinary incremental run (no reconciliation)"):
            for s, counts in CREATIONS:
                r = self.fake.mutate(s, **counts)
                print(f"    {s}: created {len(r['created'])}, updated {len(r['updated'])}")
            for t in SQL_TARGETS:
                self.meltano_run(t, 3)
        with step("delete records in the fake; run 4 with reconcile_every=7d (never reconciled: due)"):
            gone: dict[str, set[str]] = {}
            for s, counts in DELETIONS:
                gone[s] = set(self.fake.mutate(s, **counts)["deleted"])
                print(f"    {s}: deleted {len(gone[s])}")
            snap = {s: self.fake.snapshot(s) for s in STREAMS}
            self.tap_env = {"TAP_GLEAP_RECONCILE_EVERY": "7d"}
            try:
                for t in SQL_TARGETS:
                    t0 = time.monotonic()
                    self.meltano_run(t, 4)
                    TIMES.append((f"  meltano run tap-gleap {t} (run 4, reconciling)", time.monotonic() - t0))
            finally:
                self.tap_env = {}
        with step("run 4: deleted rows marked in target-postgres, nothing else; target-duckdb keeps them"):
            for t in SQL_TARGETS:
                for s in STREAMS:
                    try:
                        rows, _ = sql_rows(t, self.pg, s)
                    except Exception as e:  # noqa: BLE001
                        check(f"run 4 {t}: table gleap.{s} readable", False, f"{type(e).__name__}: {e}")
                        continue
                    by_id = {r["id"]: r for r in rows}
                    marked = {i for i, r in by_id.items() if r.get("_sdc_deleted_at") is not None}
                    live = set(snap[s])
                    missing = live - set(by_id)
                    wrongly = sorted(live & marked)
                    check(f"run 4 {t}: {s}: every live record is there, none marked deleted ({len(live)})",
                          not missing and not wrongly,
                          f"missing {len(missing)} {sorted(missing)[:3]}; wrongly marked {len(wrongly)} {wrongly[:3]}")
                    deleted = gone.get(s, set())
                    if not deleted:
                        continue
                    if t == "target-postgres":
                        unmarked = sorted(i for i in deleted if i in by_id and i not in marked)
                        check(f"run 4 {t}: {s}: the {len(deleted)} records deleted in Gleap are marked _sdc_deleted_at "
                              "(or gone)", not unmarked, f"not marked: {unmarked}")
                    else:
                        kept = sorted(i for i in deleted if i in by_id and i not in marked)
                        check(f"run 4 {t}: {s}: ACTIVATE_VERSION ignored, the {len(deleted)} deleted rows stay "
                              "(as the README's table of targets says)", len(kept) == len(deleted),
                              f"{len(kept)} of {len(deleted)} kept: update the README if this target now honours it")
            for t in SQL_TARGETS:
                st = self.meltano_state(t)
                if st is None:
                    continue
                bm = st.get("bookmarks", {})
                without = [s for s in RECONCILED if not bm.get(s, {}).get("reconciled_at")]
                check(f"run 4 {t}: Meltano's state records each incremental stream's reconciliation",
                      not without, f"no reconciled_at for {without}")

    # ---- BATCH messages into target-postgres (issue 30)
    def test_batch(self):
        """batch_config: the tap writes gzip files named by BATCH messages; MeltanoLabs
        target-postgres (installed by Meltano above) loads them. A first sync (full-table
        streams with ACTIVATE_VERSION as RECORD lines, the rest in files), an incremental run
        from the target's last STATE, and a run killed with SIGKILL then resumed from the
        target's last STATE: each time the rows are the fake's ids, none marked deleted, and
        every file a manifest names is whole and in place. Self-contained: its own folder,
        its own PostgreSQL schemas, the shell recipe's pipeline."""
        import gzip
        import psycopg

        d = WORK / "batch"
        d.mkdir(exist_ok=True)
        target = self.project / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
        streams = list(STREAMS)

        def configs(name: str, rpm: int, batch_size: int) -> tuple[Path, Path]:
            tap_cfg = d / f"{name}-tap.json"
            tap_cfg.write_text(json.dumps({
                "api_key": API_KEY, "project_id": PROJECT, "api_url": self.fake.api_url, "page_size": 100,
                "requests_per_minute": rpm, "emit_activate_version_messages": True,
                "batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"},
                                 "storage": {"root": f"file://{d / name}", "prefix": "e2e-"},
                                 "batch_size": batch_size}}))
            target_cfg = d / f"{name}-target.json"
            target_cfg.write_text(json.dumps({
                "host": "127.0.0.1", "port": self.pg.port, "user": "postgres", "password": "unused-trust-auth",
                "database": "gleap", "default_target_schema": f"gleap_{name}", "add_record_metadata": True}))
            return tap_cfg, target_cfg

        def manifests(singer: str) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for line in singer.splitlines():
                m = json.loads(line)
                if m["type"] == "BATCH":
                    out.setdefault(m["stream"], []).extend(m["manifest"])
            return out

        def whole(urls: list[str]) -> list[str]:
            """The named files that are not whole, gzip to the end, in place."""
            bad = []
            for url in urls:
                path = Path(url.removeprefix("file://"))
                try:
                    ok = not url.endswith(".tmp") and gzip.decompress(path.read_bytes()).endswith(b"\n")
                except Exception:  # noqa: BLE001
                    ok = False
                if not ok:
                    bad.append(url)
            return bad

        def check_rows(name: str, what: str) -> None:
            with psycopg.connect(self.pg.dsn()) as c:
                for s in streams:
                    want = set(self.fake.snapshot(s))
                    try:
                        rows = c.execute(f'SELECT id, _sdc_deleted_at FROM gleap_{name}."{s}"').fetchall()
                    except Exception as e:  # noqa: BLE001
                        c.rollback()
                        check(f"batch {what}: {s}: table gleap_{name}.{s} readable", not want, f"{e}")
                        continue
                    ids = [r[0] for r in rows]
                    marked = [r[0] for r in rows if r[1] is not None]
                    check(f"batch {what}: {s}: the rows are the fake's {len(want)} ids, once each, none marked deleted",
                          len(ids) == len(set(ids)) and set(ids) == want and not marked,
                          f"{len(rows)} rows; missing {sorted(want - set(ids))[:3]}; extra {sorted(set(ids) - want)[:3]}; "
                          f"marked {marked[:3]}")

        def last_state(path: Path) -> Path | None:
            lines = [x for x in path.read_text().splitlines() if x.strip()]
            if not lines:
                return None
            state = d / f"{path.stem}.state.json"
            state.write_text(lines[-1])
            return state

        def pipeline(name: str, n: int, tap_cfg: Path, target_cfg: Path, state: Path | None) -> subprocess.CompletedProcess:
            state_arg = f"--state {state}" if state else ""
            return run(f"set -o pipefail; {TAP_BIN} --config {tap_cfg} {state_arg} 2>{d / f'{name}-{n}-tap.log'} "
                       f"| tee {d / f'{name}-{n}.singer'} | {target} --config {target_cfg} > {d / f'{name}-{n}-target.jsonl'} "
                       f"2>{d / f'{name}-{n}-target.log'}", shell=True, check_rc=False)

        with step("batch_config: a first sync into target-postgres through gzip batch files"):
            tap_cfg, target_cfg = configs("batch", 6000, 500)
            p = pipeline("batch", 1, tap_cfg, target_cfg, None)
            if not check("batch run 1: tap-gleap | target-postgres succeeds", p.returncode == 0,
                         (d / "batch-1-target.log").read_text()[-1500:]):
                return
            files = manifests((d / "batch-1.singer").read_text())
            check("batch run 1: the incremental streams come as BATCH files, several for tickets",
                  all(s in files for s in INCREMENTAL) and len(files["tickets"]) > 1, f"{ {s: len(f) for s, f in files.items()} }")
            bad = whole([u for us in files.values() for u in us])
            check("batch run 1: every file a manifest names is whole and in place", not bad, f"{bad[:3]}")
            check_rows("batch", "run 1")
        with step("batch_config: an incremental run from the target's last STATE"):
            changed = {s: self.fake.mutate(s, update=counts[0], create=counts[1])
                       for s, counts in {"tickets": (20, 10), "sessions": (5, 3), "messages": (8, 6)}.items()}
            p = pipeline("batch", 2, tap_cfg, target_cfg, last_state(d / "batch-1-target.jsonl"))
            if not check("batch run 2: the incremental run succeeds", p.returncode == 0,
                         (d / "batch-2-target.log").read_text()[-1500:]):
                return
            files2 = manifests((d / "batch-2.singer").read_text())
            records2 = sum(len(gzip.decompress(Path(u.removeprefix("file://")).read_bytes()).splitlines())
                           for u in files2.get("tickets", []))
            check("batch run 2: the tickets' files hold what changed, not the whole stream",
                  len(changed["tickets"]["updated"]) + len(changed["tickets"]["created"]) <= records2
                  < len(self.fake.snapshot("tickets")), f"{records2} records in run 2's tickets files")
            check_rows("batch", "run 2")
            with psycopg.connect(self.pg.dsn()) as c:
                cur = c.execute("SELECT * FROM gleap_batch.tickets")
                names = [col.name.lower() for col in cur.description]
                loaded = {r["id"]: r["updatedat"] for r in (dict(zip(names, row)) for row in cur.fetchall())}
            snap = self.fake.snapshot("tickets")
            stale = [i for i in changed["tickets"]["updated"] if as_naive_utc(loaded.get(i)) != parse_ts(snap[i])]
            check("batch run 2: the updated tickets carry their new updatedAt", not stale, f"{stale[:3]}")
        with step("batch_config: a run killed with SIGKILL, then resumed from the target's last STATE"):
            tap_cfg, target_cfg = configs("killed", 1200, 150)
            tap_log = open(d / "killed-1-tap.log", "w")
            target_out = open(d / "killed-1-target.jsonl", "w")
            tap = subprocess.Popen([str(TAP_BIN), "--config", str(tap_cfg)], stdout=subprocess.PIPE, stderr=tap_log)
            tgt = subprocess.Popen([str(target), "--config", str(target_cfg)], stdin=subprocess.PIPE,
                                   stdout=target_out, stderr=open(d / "killed-1-target.log", "w"))
            named, batches, killed = [], 0, False
            for line in tap.stdout:
                if not line.endswith(b"\n"):
                    break  # a torn last line: a target drops it
                m = json.loads(line)
                if m["type"] == "BATCH":
                    named.extend(m["manifest"])
                    batches += 1
                tgt.stdin.write(line)
                if batches == 6 and not killed:
                    os.kill(tap.pid, signal.SIGKILL)
                    killed = True
            tgt.stdin.close()
            tap.wait()
            tgt.wait()
            tap_log.close()
            target_out.close()
            check("batch kill: the tap was killed mid-run (SIGKILL)", tap.returncode == -signal.SIGKILL,
                  f"exit {tap.returncode} after {batches} BATCH lines")
            check("batch kill: the target took what was sent", tgt.returncode == 0,
                  (d / "killed-1-target.log").read_text()[-1500:])
            bad = whole(named)
            check("batch kill: every file named before the kill is whole, never a .tmp", not bad, f"{bad[:3]}")
            left = sorted(p.name for p in (d / "killed").glob("*.tmp"))
            print(f"    killed after {batches} BATCH lines; left half-written (named by nothing): {left[:3]}")
            p = pipeline("killed", 2, tap_cfg, target_cfg, last_state(d / "killed-1-target.jsonl"))
            if check("batch kill: the resumed run succeeds", p.returncode == 0,
                     (d / "killed-2-target.log").read_text()[-1500:]):
                check_rows("killed", "kill then resume")

    # ---- 5. the README's cron recipe
    def cron(self, n: int):
        """The README's shell recipe, verbatim in spirit: tap | target, keep the target's last STATE."""
        d = WORK / "cron"
        d.mkdir(exist_ok=True)
        target = self.project / ".meltano" / "loaders" / "target-jsonl" / "venv" / "bin" / "target-jsonl"
        if n == 1:
            (d / "config.json").write_text(json.dumps({
                "api_key": API_KEY, "project_id": PROJECT, "api_url": self.fake.api_url,
                "page_size": 100, "requests_per_minute": 6000}))
            (d / "target.json").write_text(json.dumps({"destination_path": str(d / "out"),
                                                       "do_timestamp_file": False}))
        script = f"""
set -euo pipefail
cd {d}
export PATH={self.wheel_tap.parent}:{target.parent}:$PATH
{CRON_RECIPE}
"""
        before = {s: len((d / "out" / f"{s}.jsonl").read_text().splitlines())
                  if (d / "out" / f"{s}.jsonl").exists() else 0 for s in STREAMS}
        p = run(script, shell=True, log=WORK / "logs" / f"cron-{n}.log", check_rc=False, env=no_rust_env())
        if not check(f"cron run {n}: tap-gleap | target-jsonl, state kept in state.json", p.returncode == 0
                     and (d / "state.json").exists(), p.stdout[-1500:]):
            return
        state = json.loads((d / "state.json").read_text())
        check(f"cron run {n}: state.json holds the bookmarks", set(INCREMENTAL) <= set(state.get("bookmarks", {})),
              json.dumps(state)[:300])
        for s in PER_PARENT:
            check(f"cron run {n}: {s} not extracted (not selected by default)",
                  not (d / "out" / f"{s}.jsonl").exists())
        for s in STREAMS:
            lines = [json.loads(x) for x in (d / "out" / f"{s}.jsonl").read_text().splitlines()]
            ids = [r["id"] for r in lines[before[s]:]]
            if n == 1:
                check(f"cron run 1: {s}: every record", set(ids) == set(self.snap1[s]) and len(ids) == len(self.snap1[s]),
                      f"{len(ids)} lines, fake has {len(self.snap1[s])}")
            else:
                self.state1["cron"] = self.cron_state1
                self.check_second_extraction("cron", s, ids)
        if n == 1:
            self.cron_state1 = state

    # ---- all
    def main(self) -> int:
        t_all = time.monotonic()
        try:
            self.test_plugin_definition()
            self.test_install()
            self.start_services()
            self.test_stream_maps()
            self.test_meltano_install()
            with step("cron recipe, run 1"):
                self.cron(1)
            self.round1()
            self.mutate()
            with step("cron recipe, run 2"):
                self.cron(2)
            self.round2()
            self.round3()
            self.test_batch()
        except Abort as e:
            check("the end-to-end test ran to the end", False, str(e))
        except Exception:  # noqa: BLE001
            check("the end-to-end test ran to the end", False, traceback.format_exc())
        finally:
            if self.fake:
                self.fake.stop()
            if self.pg:
                self.pg.stop()
        total = time.monotonic() - t_all
        setup = float(os.environ.get("E2E_SETUP_SECONDS", "0"))
        print("\n==> timings")
        build = float(os.environ.get("E2E_BUILD_SECONDS", "0"))
        wheel = float(os.environ.get("E2E_WHEEL_SECONDS", "0"))
        print(f"    {setup:7.1f} s  scripts/e2e.sh: virtualenv, PostgreSQL package")
        print(f"    {build:7.1f} s  scripts/e2e.sh: scripts/build.sh (tap-gleap and fake-gleap, release)")
        print(f"    {wheel:7.1f} s  scripts/e2e.sh: scripts/wheel.sh (the manylinux wheel)")
        setup += build + wheel
        for name, t in TIMES:
            print(f"    {t:7.1f} s  {name}")
        print(f"    {total:7.1f} s  test_e2e.py in all")
        print(f"    {setup + total:7.1f} s  end-to-end test in all (logs: {WORK / 'logs'})")
        failed = [n for n, ok in RESULTS if not ok]
        print("\n==> summary")
        if failed:
            print("failed checks:")
            for n in failed:
                print(f"  - {n}")
        passed = len(RESULTS) - len(failed)
        print(f"e2e: {passed} passed, {len(failed)} failed")
        return 1 if failed else 0


# The README's "cron" section runs exactly this (in the directory holding
# config.json and target.json).
CRON_RECIPE = r"""
state_arg=(); [ -s state.json ] && state_arg=(--state state.json)
tap-gleap --config config.json "${state_arg[@]}" \
  | target-jsonl --config target.json > target-state.jsonl
tail -n 1 target-state.jsonl > state.json.new
[ -s state.json.new ] && mv state.json.new state.json   # never keep an empty state
"""


def _timeout(*_):
    raise Abort(f"the end-to-end test took more than {DEADLINE_S} s")


DEADLINE_S = 25 * 60

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(DEADLINE_S)
    sys.exit(E2E().main())
