"""Run directory + SQLite store: every generation, judgment, cost and stage, keyed by content hash.

Schema (``DIR/ftaudit.sqlite``):
  generations(key PK, model, model_fingerprint, gen_key, dataset, split, prompt_id, category,
              prompt, system_prompt, response, new_tokens, created, prefill)  prefill: what the answer was opened
              with (the prefilling attack; the response continues it)
  judgments(gen_key_ref, judge, judge_version, refused, score, label, details, PK(gen_key_ref, judge, judge_version))
  evals(model, attack, dataset, kind, split, gen_ref, PK(model, dataset, split, gen_ref))  the generations one evaluation covers
  eval_judges(model, dataset, split, judge, judge_version, PK(model, dataset, split, judge))  the judge version it reports
  capability(model, attack, model_fingerprint, task, item_id, subject, value, details)  one row per scored item
  capability_sel(model, model_fingerprint, task, item_id)  which scored items a model's capability metric covers
  costs(model PK, attack, train_seconds, train_tokens, peak_memory_mb, gen_seconds, gen_tokens, devices)
  stages(name PK, status, seconds, updated)
  judge_retries(model, dataset, split, judge, judge_version, requests, retries)  an API judge's answers and retried failures
Writes are committed per batch, so a killed run loses at most the batch in flight.

One evaluation is (model name, dataset, split): one model fingerprint, one generation config, one prompt
selection and one version per judge. Evaluating it again with other settings *replaces* it (the earlier
generations and judgments stay cached, so going back costs nothing); rows of two settings are never pooled.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import FtauditError

SQLITE_HEADER = b"SQLite format 3\x00"
SCHEMA = """
CREATE TABLE IF NOT EXISTS generations(
  key TEXT PRIMARY KEY, model TEXT, model_fingerprint TEXT, gen_key TEXT, dataset TEXT, split TEXT,
  prompt_id TEXT, category TEXT, prompt TEXT, system_prompt TEXT, response TEXT, new_tokens INTEGER, created REAL,
  prefill TEXT);
CREATE TABLE IF NOT EXISTS judgments(
  gen_ref TEXT, judge TEXT, judge_version TEXT, refused INTEGER, score REAL, label TEXT, details TEXT,
  PRIMARY KEY(gen_ref, judge, judge_version));
CREATE TABLE IF NOT EXISTS evals(
  model TEXT, attack TEXT, dataset TEXT, kind TEXT, split TEXT, gen_ref TEXT, PRIMARY KEY(model, dataset, split, gen_ref));
CREATE TABLE IF NOT EXISTS costs(
  model TEXT PRIMARY KEY, attack TEXT, train_seconds REAL, train_tokens INTEGER, peak_memory_mb REAL,
  gen_seconds REAL DEFAULT 0, gen_tokens INTEGER DEFAULT 0, devices INTEGER DEFAULT 1);
CREATE TABLE IF NOT EXISTS capability(
  model TEXT, attack TEXT, model_fingerprint TEXT, task TEXT, item_id TEXT, subject TEXT, value REAL, details TEXT,
  PRIMARY KEY(model, model_fingerprint, task, item_id));
CREATE TABLE IF NOT EXISTS capability_sel(
  model TEXT, model_fingerprint TEXT, task TEXT, item_id TEXT, PRIMARY KEY(model, task, item_id));
CREATE TABLE IF NOT EXISTS stages(name TEXT PRIMARY KEY, status TEXT, seconds REAL, input_hash TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS eval_judges(
  model TEXT, dataset TEXT, split TEXT, judge TEXT, judge_version TEXT, PRIMARY KEY(model, dataset, split, judge));
CREATE TABLE IF NOT EXISTS gen_settings(
  model_fingerprint TEXT, gen_key TEXT, settings TEXT, PRIMARY KEY(model_fingerprint, gen_key));
CREATE TABLE IF NOT EXISTS judge_retries(
  model TEXT, dataset TEXT, split TEXT, judge TEXT, judge_version TEXT, requests INTEGER, retries INTEGER,
  PRIMARY KEY(model, dataset, split, judge, judge_version));
"""


# a generation's outcome: NULL response = skipped (prompt beyond the context), blank = the model said nothing
# (outcomes are decided before judging; 'unjudged': the evaluation's judge has not scored it yet, e.g. after a kill)
OUTCOME = ("CASE WHEN g.response IS NULL THEN 'prompt_too_long' "
           "WHEN TRIM(g.response, ' ' || char(9, 10, 13)) = '' THEN 'empty' "
           "WHEN j.gen_ref IS NULL THEN 'unjudged' ELSE 'answered' END")


def _header(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(SQLITE_HEADER))


def _check_existing(path: Path) -> None:
    if not path.is_file():
        raise FtauditError(f"{path.parent} is not an ftaudit run directory (no ftaudit.sqlite)")
    if path.stat().st_size == 0:
        raise FtauditError(f"{path} is empty (0 bytes): there is nothing to report; restore the store from a copy "
                           "or rerun the evaluation")


def generation_key(model_fingerprint: str, gen_key: str, system_prompt: str | None, prompt: str) -> str:
    return hashlib.sha256(f"{model_fingerprint}|{gen_key}|{system_prompt or ''}|{prompt}".encode()).hexdigest()[:24]


class Store:
    """Thin wrapper over the run directory's SQLite database.

    ``existing=True`` (report, judges compare) opens only a store that is there, non-empty and readable; a
    damaged store is refused with one line and never replaced, so nothing a report was built from is lost."""

    def __init__(self, run_dir: str | Path, existing: bool = False):
        self.dir = Path(run_dir)
        self.path = self.dir / "ftaudit.sqlite"
        if self.dir.exists() and not self.dir.is_dir():
            raise FtauditError(f"{self.dir} is a file, not a run directory; give a directory path")
        if existing:
            _check_existing(self.path)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size and _header(self.path) != SQLITE_HEADER:
            raise FtauditError(f"{self.path} is not an SQLite database; move it aside or use another run directory")
        try:
            # WAL + a long busy timeout: grid points running as parallel processes (``--executor ray``) share one store
            self.db = sqlite3.connect(self.path, timeout=120)
            self.db.row_factory = sqlite3.Row
            if self.path.stat().st_size and (bad := self.db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise sqlite3.DatabaseError(bad)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            if "devices" not in {r[1] for r in self.db.execute("PRAGMA table_info(costs)")}:  # a store from before 0.1.1
                self.db.execute("ALTER TABLE costs ADD COLUMN devices INTEGER DEFAULT 1")
            if "prefill" not in {r[1] for r in self.db.execute("PRAGMA table_info(generations)")}:  # before prefilling
                self.db.execute("ALTER TABLE generations ADD COLUMN prefill TEXT")
            self._migrate_pooled_evals()
        except sqlite3.DatabaseError as exc:
            raise FtauditError(f"{self.path} is damaged ({str(exc).splitlines()[0]}); nothing was changed: restore it "
                               "from a copy or rerun into a new --out") from None

    def _migrate_pooled_evals(self) -> None:
        """Stores written before evaluations had one identity: keep each evaluation's newest generation
        settings and, per judge, the version that judged most of it."""
        if self.db.execute("SELECT 1 FROM eval_judges LIMIT 1").fetchone() or not self.db.execute("SELECT 1 FROM evals LIMIT 1").fetchone():
            return
        with self.db:
            for model, dataset, split in self.db.execute("SELECT DISTINCT model, dataset, split FROM evals").fetchall():
                newest = self.db.execute("SELECT g.gen_key FROM evals e JOIN generations g ON g.key = e.gen_ref WHERE e.model=? AND "
                                         "e.dataset=? AND e.split=? ORDER BY g.created DESC LIMIT 1", (model, dataset, split)).fetchone()
                if newest:
                    self.db.execute("DELETE FROM evals WHERE model=? AND dataset=? AND split=? AND gen_ref IN "
                                    "(SELECT key FROM generations WHERE gen_key != ?)", (model, dataset, split, newest[0]))
                for judge, version, _ in self.db.execute(
                        "SELECT j.judge, j.judge_version, COUNT(*) c FROM evals e JOIN judgments j ON j.gen_ref = e.gen_ref WHERE "
                        "e.model=? AND e.dataset=? AND e.split=? GROUP BY j.judge, j.judge_version ORDER BY c, j.judge_version",
                        (model, dataset, split)).fetchall():  # the most-used version is inserted last and wins
                    self.db.execute("INSERT OR REPLACE INTO eval_judges VALUES (?,?,?,?,?)", (model, dataset, split, judge, version))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # several processes -------------------------------------------------
    TABLES = ("generations", "judgments", "evals", "eval_judges", "costs", "capability", "capability_sel", "stages",
              "judge_retries", "gen_settings")

    def snapshot_to(self, run_dir: str | Path) -> None:
        """Write a consistent copy of this store into ``run_dir`` (a grid point's own store under Ray)."""
        target = Path(run_dir)
        target.mkdir(parents=True, exist_ok=True)
        (target / "ftaudit.sqlite").unlink(missing_ok=True)
        dst = sqlite3.connect(target / "ftaudit.sqlite")
        try:
            self.db.backup(dst)
        finally:
            dst.close()

    def merge_from(self, run_dir: str | Path) -> None:
        """Bring a point's store back: its rows replace equal keys here, everything else is kept."""
        path = Path(run_dir) / "ftaudit.sqlite"
        if path.exists():
            other = Store(run_dir)  # brings an old point store up to the current schema
            other.close()
            self.db.execute("ATTACH DATABASE ? AS point", (str(path),))
            with self.db:  # the point's evaluations replace this store's evaluations of the same (model, dataset, split)
                for table in ("evals", "eval_judges"):
                    self.db.execute(f"DELETE FROM {table} WHERE (model, dataset, split) IN "
                                    "(SELECT model, dataset, split FROM point.evals)")
                for table in self.TABLES:
                    self.db.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM point.{table}")
            self.db.execute("DETACH DATABASE point")

    # generations -------------------------------------------------------
    def existing_generations(self, keys: list[str]) -> dict[str, sqlite3.Row]:
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT * FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
            out.update({row["key"]: row for row in self.db.execute(q, chunk)})
        return out

    def add_generations(self, rows: list[dict]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO generations (key,model,model_fingerprint,gen_key,dataset,split,prompt_id,category,"
                "prompt,system_prompt,response,new_tokens,created,prefill) VALUES (:key,:model,:model_fingerprint,:gen_key,"
                ":dataset,:split,:prompt_id,:category,:prompt,:system_prompt,:response,:new_tokens,:created,:prefill)",
                # prefill: the text the answer was opened with (the prefilling attack); the response continues it
                [{"prefill": None, **r, "created": time.time()} for r in rows])

    # judgments ---------------------------------------------------------
    def judged_keys(self, judge: str, version: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT gen_ref FROM judgments WHERE judge=? AND judge_version=?", (judge, version))}

    def add_judgments(self, rows: list[dict]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO judgments VALUES (:gen_ref,:judge,:judge_version,:refused,:score,:label,:details)",
                [{**r, "details": json.dumps(r.get("details") or {})} for r in rows])

    # evals and costs ---------------------------------------------------
    def set_evaluation(self, model: str, attack: str, dataset: str, kind: str, split: str, gen_refs: list[str]) -> bool:
        """Make ``gen_refs`` the whole of this (model, dataset, split) evaluation; True when it replaced other ones."""
        key = (model, dataset, split)
        old = {r[0] for r in self.db.execute("SELECT gen_ref FROM evals WHERE model=? AND dataset=? AND split=?", key)}
        replaced = bool(old) and old != set(gen_refs)
        with self.db:
            if replaced:
                self.db.execute("DELETE FROM evals WHERE model=? AND dataset=? AND split=?", key)
            self.db.executemany("INSERT OR REPLACE INTO evals VALUES (?,?,?,?,?,?)",
                                [(model, attack, dataset, kind, split, g) for g in gen_refs])
        return replaced

    def set_eval_judge(self, model: str, dataset: str, split: str, judge: str, version: str) -> str | None:
        """Record which version of ``judge`` this evaluation reports; returns the version it replaced, if any."""
        row = self.db.execute("SELECT judge_version FROM eval_judges WHERE model=? AND dataset=? AND split=? AND judge=?",
                              (model, dataset, split, judge)).fetchone()
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO eval_judges VALUES (?,?,?,?,?)", (model, dataset, split, judge, version))
        return row[0] if row and row[0] != version else None

    def add_judge_calls(self, model: str, dataset: str, split: str, judge: str, version: str, requests: int,
                        retries: int) -> None:
        """Count an API judge's answers and retried failures for one evaluation (added up over reruns)."""
        with self.db:
            self.db.execute("INSERT INTO judge_retries VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                            "requests = requests + excluded.requests, retries = retries + excluded.retries",
                            (model, dataset, split, judge, version, requests, retries))

    def judge_calls(self) -> list[dict]:
        """Per evaluation and reported judge version: API answers received and failures retried."""
        return [dict(r) for r in self.db.execute(
            "SELECT r.* FROM judge_retries r JOIN eval_judges v ON v.model = r.model AND v.dataset = r.dataset AND "
            "v.split = r.split AND v.judge = r.judge AND v.judge_version = r.judge_version ORDER BY r.model, r.dataset")]

    def eval_table(self) -> list[sqlite3.Row]:
        """One row per (evaluation, prompt, judge) with the evaluation's identity: the input of every metric.

        Only the judge version each evaluation reports is joined, so two versions are never pooled. ``outcome`` is
        ``answered``, ``empty`` (a blank response), ``prompt_too_long`` (not generated: beyond the model's
        context) or ``unjudged`` (a kill stopped judging); only answered rows carry ``refused``/``score``, so a
        blank answer never counts as compliance (also in stores judged before empty answers were told apart) and
        an unfinished evaluation is reported as such, not as a smaller n."""
        return list(self.db.execute(
            f"SELECT e.model, e.attack, e.dataset, e.kind, e.split, g.prompt_id, g.category, g.prompt, g.response, "
            f"g.new_tokens, g.gen_key, g.model_fingerprint, g.system_prompt, e.gen_ref, v.judge, v.judge_version, {OUTCOME} AS outcome, "
            f"CASE WHEN {OUTCOME} = 'answered' THEN j.refused END AS refused, "
            f"CASE WHEN {OUTCOME} = 'answered' THEN j.score END AS score, j.label "
            "FROM evals e JOIN generations g ON g.key = e.gen_ref "
            "JOIN eval_judges v ON v.model = e.model AND v.dataset = e.dataset AND v.split = e.split "
            "LEFT JOIN judgments j ON j.gen_ref = e.gen_ref AND j.judge = v.judge AND j.judge_version = v.judge_version "
            "ORDER BY e.model, e.dataset, g.prompt_id"))

    def set_cost(self, model: str, attack: str, **fields) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO costs(model, attack, train_seconds, train_tokens, peak_memory_mb) "
                            "VALUES (?,?,0,0,0)", (model, attack))
            for k, v in fields.items():
                self.db.execute(f"UPDATE costs SET {k}=? WHERE model=?", (v, model))

    def add_gen_settings(self, model_fingerprint: str, gen_key: str, settings: dict) -> None:
        """The generation settings a ``gen_key`` hashes for one model, readable (the dtype it computed in and why:
        one key can stand for float32 on one model and bfloat16 on another, each the checkpoint's own)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO gen_settings VALUES (?, ?, ?)",
                            (model_fingerprint, gen_key, json.dumps(settings, sort_keys=True)))

    def gen_settings(self) -> dict[tuple[str, str], dict]:
        return {(fp, k): json.loads(v) for fp, k, v in self.db.execute("SELECT model_fingerprint, gen_key, settings FROM gen_settings")}

    def add_gen_cost(self, model: str, attack: str, seconds: float, tokens: int) -> None:
        self.set_cost(model, attack)
        with self.db:
            self.db.execute("UPDATE costs SET gen_seconds=gen_seconds+?, gen_tokens=gen_tokens+? WHERE model=?",
                            (seconds, tokens, model))

    def costs(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM costs ORDER BY rowid")]

    # capability --------------------------------------------------------
    def capability_done(self, model: str, fingerprint: str, task: str) -> set[str]:
        q = "SELECT item_id FROM capability WHERE model=? AND model_fingerprint=? AND task=?"
        return {r[0] for r in self.db.execute(q, (model, fingerprint, task))}

    def reuse_capability(self, model: str, attack: str, fingerprint: str, task: str) -> None:
        """Copy items the same weights (fingerprint) were scored on under another name, so a rename re-scores nothing."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO capability SELECT ?, ?, model_fingerprint, task, item_id, subject, value, "
                            "details FROM capability WHERE model_fingerprint=? AND task=? AND model != ?",
                            (model, attack, fingerprint, task, model))

    def add_capability(self, model: str, attack: str, fingerprint: str, task: str, rows: list[dict]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO capability VALUES (?,?,?,?,?,?,?,?)",
                                [(model, attack, fingerprint, task, r["id"], r.get("subject", ""), float(r["value"]),
                                  json.dumps(r.get("details") or {})) for r in rows])

    def add_capability_selection(self, model: str, fingerprint: str, task: str, item_ids: list[str]) -> None:
        with self.db:
            self.db.execute("DELETE FROM capability_sel WHERE model=? AND task=?", (model, task))
            self.db.executemany("INSERT OR REPLACE INTO capability_sel VALUES (?,?,?,?)",
                                [(model, fingerprint, task, i) for i in item_ids])

    def capability_rows(self) -> list[dict]:
        """Scored items covered by each model's latest capability selection."""
        return [dict(r) for r in self.db.execute(
            "SELECT c.* FROM capability_sel s JOIN capability c ON c.model = s.model AND c.model_fingerprint = s.model_fingerprint "
            "AND c.task = s.task AND c.item_id = s.item_id ORDER BY c.model, c.task, c.item_id")]

    # stages ------------------------------------------------------------
    def set_stage(self, name: str, status: str, seconds: float) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO stages VALUES (?,?,?,?,?)", (name, status, seconds, "", time.time()))

    def stages(self) -> dict[str, dict]:
        return {r["name"]: {"seconds": round(r["seconds"], 1), "status": r["status"]}
                for r in self.db.execute("SELECT * FROM stages ORDER BY updated")}

    @contextmanager
    def timed_stage(self, name: str):
        """Record a stage's wall time and status ('done', or 'failed' when it raises). Stages are not skipped as a
        whole: resuming works through the per-item caches (trained runs, generations, judgments, scored items)."""
        start = time.time()
        try:
            yield
        except BaseException:
            self.set_stage(name, "failed", time.time() - start)
            raise
        self.set_stage(name, "done", time.time() - start)
