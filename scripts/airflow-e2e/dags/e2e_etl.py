"""promstatsd's live Airflow check (scripts/airflow-e2e.sh): a task group, a task
that fails once and succeeds on its retry, a task in a pool of two slots, and a
deferrable sensor that waits in the triggerer."""

import time
from datetime import timedelta

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import dag, task, task_group


@dag(dag_id="e2e_etl", schedule=None, catchup=False, max_active_runs=4, tags=["promstatsd-e2e"])
def e2e_etl():
    @task
    def extract():
        return 3

    @task_group(group_id="transform")
    def transform(n):
        @task
        def clean(n):
            return n * 2

        @task
        def enrich(n):
            return n + 1

        return enrich(clean(n))

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(n, ti=None):
        # Fails its first try: one finish as up_for_retry, then one as success.
        if ti.try_number == 1:
            raise RuntimeError("first try fails on purpose")
        return n

    @task(pool="e2e_pool")
    def load(n):
        # Long enough for the scheduler's pool gauges (every 5 s) to see it.
        time.sleep(6)
        return n

    # 15 s after it starts, however late that is: it always defers to the
    # triggerer exactly once (a delta from the trigger time would not defer
    # at all on a machine slow enough to start it 15 s late).
    wait = DateTimeSensorAsync(
        task_id="wait_a_little",
        target_time="{{ (macros.datetime.utcnow() + macros.timedelta(seconds=15)).isoformat() }}",
    )

    n = extract()
    t = transform(n)
    wait >> load(flaky(t))


e2e_etl()
