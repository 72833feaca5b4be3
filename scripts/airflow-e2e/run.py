#!/usr/bin/env python3
"""A real Apache Airflow against promstatsd, checked through a real Prometheus.

Started by scripts/airflow-e2e.sh with the Airflow virtualenv's python. Two
Airflow stacks run side by side, one per wire mode (plain StatsD and
DogStatsD), each with its own promstatsd (the built-in `airflow` pack) and its
own SQLite database: `db migrate`, then `api-server`, `scheduler`,
`dag-processor` and `triggerer` with the LocalExecutor and the README's
`[metrics]` settings. The project's DAGs (scripts/airflow-e2e/dags) are
triggered for a few minutes; once every run has ended, one Prometheus that
scraped both promstatsd instances is asked, and the answers are compared with
what each Airflow's own database says. Every process started is stopped.
Exit 0 when every check holds.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAGS = os.path.join(ROOT, "scripts", "airflow-e2e", "dags")
SECONDS = int(os.environ.get("AIRFLOW_E2E_SECONDS", "180"))
TRIGGER_EVERY = 30
POOL_SLOTS = 2
MODES = {
    "plain": {},
    "datadog": {"AIRFLOW__METRICS__STATSD_DATADOG_ENABLED": "True"},
}


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"airflow e2e: {msg}", flush=True)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, probe, secs=120):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit(f"airflow e2e: {what} not ready after {secs} s")


class Processes:
    """Every process started, each in its own process group, stopped at the end."""

    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv, env=None):
        out = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop_all(self):
        for _, p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for _, p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        # A killed group's orphaned children stay in it as zombies until init
        # reaps them: give that a few seconds before calling a group left.
        left = []
        deadline = time.time() + 10
        for name, p in self.procs:
            while True:
                try:
                    os.killpg(p.pid, 0)
                except ProcessLookupError:
                    break
                if time.time() > deadline:
                    left.append(name)
                    break
                time.sleep(0.1)
        return left


class Stack:
    """One Airflow (and its promstatsd) sending in one wire mode."""

    def __init__(self, mode, work, procs, promstatsd):
        self.mode = mode
        self.dir = os.path.join(work, mode)
        os.makedirs(self.dir)
        self.procs = procs
        self.promstatsd = promstatsd
        self.statsd_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port()
        api = free_port()
        self.db = os.path.join(self.dir, "airflow.db")
        self.env = dict(os.environ)
        self.env.update({
            "AIRFLOW_HOME": os.path.join(self.dir, "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": DAGS,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__API__PORT": str(api),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # The README's [metrics] settings.
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.statsd_port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        })
        self.env.update(MODES[mode])
        self.airflow = os.path.join(os.path.dirname(sys.executable), "airflow")

    def cli(self, *args):
        subprocess.run([self.airflow, *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self.procs.start(f"{self.mode}-promstatsd", [
            self.promstatsd, "--statsd.mapping-config=airflow",
            f"--statsd.listen-udp=127.0.0.1:{self.statsd_port}", "--statsd.listen-tcp=",
            f"--web.listen-address=127.0.0.1:{self.web_port}", "--push.listen-address=",
        ])
        self.cli("db", "migrate")
        self.cli("pools", "set", "e2e_pool", str(POOL_SLOTS), "promstatsd e2e")
        for daemon in ["api-server", "scheduler", "dag-processor", "triggerer"]:
            self.procs.start(f"{self.mode}-{daemon}", [self.airflow, daemon], env=self.env)

    def dags_loaded(self):
        with sqlite3.connect(self.db) as c:
            n = c.execute("select count(*) from dag where dag_id like 'e2e_%' "
                          "and is_stale = 0").fetchone()[0]
        return n == 2

    def trigger(self, dag_id):
        self.cli("dags", "trigger", dag_id)

    def unfinished(self):
        with sqlite3.connect(self.db) as c:
            return c.execute("select count(*) from dag_run where state in "
                             "('queued', 'running')").fetchone()[0]

    def rows(self, sql):
        with sqlite3.connect(self.db) as c:
            return c.execute(sql).fetchall()


class Prometheus:
    def __init__(self, work, procs, stacks):
        self.port = free_port()
        conf = os.path.join(work, "prometheus.yml")
        jobs = "".join(
            f"  - job_name: promstatsd_{s.mode}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{s.web_port}']\n"
            for s in stacks)
        with open(conf, "w") as f:
            f.write(f"global:\n  scrape_interval: 2s\nscrape_configs:\n{jobs}")
        procs.start("prometheus", [
            "prometheus", f"--config.file={conf}",
            f"--storage.tsdb.path={os.path.join(work, 'prometheus-data')}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ])
        wait_for("prometheus", lambda: http_get(f"http://127.0.0.1:{self.port}/-/ready"))

    def query(self, expr):
        q = urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{q}"))
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def by(self, expr, *labels):
        return {tuple(m.get(k, "") for k in labels): v for m, v in self.query(expr)}


def expected_finishes(s):
    """airflow_ti_finish as Airflow's database tells it: (dag, task, state) -> n."""
    want = {}

    def add(key, n):
        want[key] = want.get(key, 0) + n

    for dag, task, state, n in s.rows(
            "select dag_id, task_id, state, count(*) from task_instance "
            "where dag_id like 'e2e_%' group by 1, 2, 3"):
        add((dag, task, state), n)
    # Every earlier try of a retried task ended as up_for_retry.
    for dag, task, n in s.rows(
            "select dag_id, task_id, count(*) from task_instance_history "
            "where dag_id like 'e2e_%' group by 1, 2"):
        add((dag, task, "up_for_retry"), n)
    # The sensor waits 15 s in the triggerer: each of its instances deferred once.
    for dag, task, n in s.rows(
            "select dag_id, task_id, count(*) from task_instance "
            "where task_id = 'wait_a_little' and state = 'success' group by 1, 2"):
        add((dag, task, "deferred"), n)
    return want


class Checks:
    def __init__(self):
        self.failed = []

    def equal(self, what, got, want):
        ok = got == want
        if isinstance(want, dict):
            shown = f"{len(want)} series, {sum(want.values())} in all"
            if not ok:
                keys = sorted(set(got) | set(want))
                shown = "; ".join(f"{k}: promstatsd {got.get(k)}, Airflow {want.get(k)}"
                                  for k in keys if got.get(k) != want.get(k))
        else:
            shown = f"promstatsd {got}, Airflow {want}"
        log(f"{'ok  ' if ok else 'FAIL'} {what}: {shown}")
        if not ok:
            self.failed.append(what)

    def within(self, what, got, lo, hi):
        ok = got is not None and lo <= got <= hi
        log(f"{'ok  ' if ok else 'FAIL'} {what}: {got} (expected {lo} to {hi})")
        if not ok:
            self.failed.append(what)


def check(s, prom, checks):
    job = f'job="promstatsd_{s.mode}"'
    mode = s.mode
    got = prom.by(f"sum by (dag_id, task_id, state) (airflow_ti_finish{{{job}}})",
                  "dag_id", "task_id", "state")
    got = {k: int(v) for k, v in got.items() if k[0].startswith("e2e_")}
    checks.equal(f"{mode}: airflow_ti_finish by dag, task and state", got, expected_finishes(s))

    # One spelling per page: the task group's tasks are `transform.clean` in
    # the legacy-name families and in the ones whose ids come from tags.
    spelled = {t for _, t, _ in got} | {
        t for (t,) in prom.by(f"sum by (task_id) ({{{job},task_id=~\".+\"}})",
                              "task_id")}
    checks.equal(f"{mode}: task ids with a `__`", sorted(t for t in spelled if "__" in t), [])
    got = prom.by(f"sum by (dag_id, state) (airflow_dagrun_duration_count{{{job}}})",
                  "dag_id", "state")
    want = {(d, st): n for d, st, n in s.rows(
        "select dag_id, state, count(*) from dag_run group by 1, 2")}
    checks.equal(f"{mode}: DAG runs counted by dag and state",
                 {k: int(v) for k, v in got.items()}, want)
    mean = prom.by(f"sum(airflow_dagrun_duration_sum{{{job},dag_id=\"e2e_etl\"}}) / "
                   f"sum(airflow_dagrun_duration_count{{{job},dag_id=\"e2e_etl\"}})")
    checks.within(f"{mode}: mean e2e_etl run, seconds (the sensor waits 15 s)",
                  mean.get(()), 15, 600)

    loads = s.rows("select count(*) from task_instance where task_id = 'load' "
                   "and state = 'success'")[0][0]
    got = prom.by(f"sum(airflow_task_duration_count{{{job},task_id=\"load\"}})")
    checks.equal(f"{mode}: durations of task load counted", int(got.get((), -1)), loads)
    mean = prom.by(f"sum(airflow_task_duration_sum{{{job},task_id=\"load\"}}) / "
                   f"sum(airflow_task_duration_count{{{job},task_id=\"load\"}})")
    checks.within(f"{mode}: mean duration of task load, seconds (it sleeps 6 s)",
                  mean.get(()), 6, 120)

    slots = s.rows("select slots from slot_pool where pool = 'e2e_pool'")[0][0]
    got = prom.by(f"airflow_pool_open_slots{{{job},pool=\"e2e_pool\"}}")
    checks.equal(f"{mode}: e2e_pool open slots when idle", int(got.get((), -1)), slots)
    got = prom.by(f"max_over_time(airflow_pool_running_slots{{{job},pool=\"e2e_pool\"}}[30m])")
    checks.within(f"{mode}: e2e_pool running slots at most", got.get(()), 1, slots)

    # A conflict series exists only once a name hit one (its metric_name label).
    got = prom.by(f"sum(promstatsd_sample_errors_total{{{job}}}) + "
                  f"(sum(promstatsd_events_conflict_total{{{job}}}) or vector(0))")
    checks.equal(f"{mode}: lines promstatsd refused", int(got.get((), -1)), 0)
    lines = prom.by(f"promstatsd_lines_total{{{job}}}")
    checks.within(f"{mode}: StatsD lines received", lines.get(()), 1000, 1e9)
    # The scheduler zeroes a task-state count it no longer has within its
    # ti_metrics_interval (30 s): the pack's 2-minute TTL is for a scheduler
    # that restarted and so never zeroes its predecessor's counts.
    for family in ["airflow_ti_running", "airflow_ti_queued", "airflow_ti_scheduled",
                   "airflow_ti_deferred"]:
        got = prom.by(f"{family}{{{job}}}", "dag_id", "task_id")
        stale = {k: v for k, v in got.items() if v != 0}
        checks.equal(f"{mode}: {family} series not back to 0 once every run ended",
                     stale, {})


def unix_socket_check(work, procs, promstatsd, checks):
    """Airflow 3.3.2 has no unix-socket setting; dist/airflow/promstatsd_unix.py,
    named by statsd_custom_client_path, sends over promstatsd's unixgram socket.
    Airflow's own StatsD factories (the core one its daemons use and the task
    SDK's) are asked for their client and send through it."""
    sock = os.path.join(work, "statsd.sock")
    web = free_port()
    procs.start("unix-promstatsd", [
        promstatsd, "--statsd.mapping-config=airflow", f"--statsd.listen-unixgram={sock}",
        "--statsd.listen-udp=", "--statsd.listen-tcp=",
        f"--web.listen-address=127.0.0.1:{web}", "--push.listen-address=",
    ])
    wait_for("promstatsd on a unix socket", lambda: os.path.exists(sock), 30)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": os.path.join(work, "unix-home"),
        "PYTHONPATH": os.path.join(ROOT, "dist", "airflow"),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH": "promstatsd_unix.UnixStatsClient",
        "AIRFLOW__METRICS__STATSD_HOST": sock,
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    })
    code = (
        "from airflow.observability.metrics.statsd_logger import get_statsd_logger\n"
        "core = get_statsd_logger()\n"
        "core.incr('ti.finish.etl.load.success')\n"
        "from airflow.sdk.observability.metrics.statsd_logger import get_statsd_logger as sdk\n"
        "sdk().incr('ti.finish.etl.load.success')\n"
        "core.gauge('pool.open_slots.default_pool', 5)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def page():
        return http_get(f"http://127.0.0.1:{web}/metrics")

    def counted():
        return 'airflow_ti_finish{dag_id="etl",state="success",task_id="load"} 2' in page()

    try:
        wait_for("the unix socket's samples", counted, 10)
        ok = 'airflow_pool_open_slots{pool="default_pool"} 5' in page()
    except SystemExit:
        ok = False
    checks.equal("statsd_custom_client_path over --statsd.listen-unixgram: samples counted",
                 ok, True)


def main():
    promstatsd = sys.argv[1]
    work = tempfile.mkdtemp(prefix="promstatsd-airflow-e2e-")
    procs = Processes(work)
    checks = Checks()
    try:
        unix_socket_check(work, procs, promstatsd, checks)
        stacks = [Stack(mode, work, procs, promstatsd) for mode in MODES]
        for s in stacks:
            s.start()
        prom = Prometheus(work, procs, stacks)
        for s in stacks:
            wait_for(f"{s.mode}: the DAGs", s.dags_loaded)
        log(f"Airflow up in {', '.join(MODES)} mode; triggering the DAGs for {SECONDS} s")
        started = time.time()
        while time.time() - started < SECONDS:
            for s in stacks:
                s.trigger("e2e_etl")
                s.trigger("e2e_failing")
            time.sleep(max(0, TRIGGER_EVERY - (time.time() - started) % TRIGGER_EVERY))
        for s in stacks:
            wait_for(f"{s.mode}: every DAG run to end", lambda s=s: s.unfinished() == 0, 300)
        # The task-state gauges every 30 s (the last zeroes), the pools' every
        # 5 s, the last counters, and two scrapes.
        time.sleep(40)
        for s in stacks:
            check(s, prom, checks)
    finally:
        left = procs.stop_all()
        if left:
            log(f"FAIL processes still running: {left}")
            checks.failed.append("stop every process")
    if checks.failed:
        log(f"{len(checks.failed)} checks failed; logs in {work}")
        return 1
    log("every check holds")
    subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    sys.exit(main())
